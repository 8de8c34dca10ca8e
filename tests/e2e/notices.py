"""Checks the third-party licence notices the image and the .deb ship (scripts/licence_notices.py) against
the binary's link, read here independently of that script: every Debian-installed static archive the
linker took (BINARY.map) and every shared library the loader maps (ldd) must be named in the notices,
and the libraries xrayd is known to be built from must appear with their copyright texts. A dependency
added to the build without reaching the notices fails here."""
import os
import re
import subprocess

# Debian source packages whose code every xrayd build contains, linked or compiled in from headers
# (the dynamic build loads the shared libraries of the same sources). A floor, not the list: the list
# is derived from the link by the script and compared with the link below.
XRAYD_SOURCES = ("glibc", "gcc-12", "openssl", "sqlite3", "yaml-cpp", "zlib", "libzstd", "protobuf", "simdjson",
                 "fmtlib", "spdlog", "boost1.74", "nlohmann-json3")
# The texts those files refer to under /usr/share/common-licenses, which a FROM scratch image lacks.
XRAYD_COMMON_LICENCES = ("Apache-2.0", "LGPL-2.1", "GPL-3")


def linked_names(binary):
    """The file names of the Debian-installed archives and objects in BINARY.map and the shared libraries
    ldd lists (the loader included)."""
    names = set()
    map_path = binary + ".map"
    if os.path.exists(map_path):
        with open(map_path, errors="replace") as f:
            for line in f:
                m = re.match(r"(/usr/\S+\.a)\(", line)
                if m:
                    names.add(os.path.basename(m.group(1)))
    r = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if r.returncode == 0:
        for line in r.stdout.splitlines():
            m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)", line)
            if m:
                names.add(os.path.basename(m.group(1)))
    return names


def check(test, text, binary, sources=XRAYD_SOURCES, common=XRAYD_COMMON_LICENCES):
    """Asserts that notices `text` cover what `binary` was linked from."""
    names = linked_names(binary)
    test.assertTrue(names, f"{binary}: neither a link map nor shared libraries")
    components = text.split("\n\n", 3)[2] if text.count("\n\n") >= 3 else text
    for name in sorted(names):
        test.assertRegex(components, rf"[ ,]{re.escape(name)}\b", f"{name} is linked but not in the notices")
    for source in sources:
        test.assertRegex(components, rf"\[{re.escape(source)}[ \]]", f"no notice for Debian source package {source}")
        test.assertTrue(re.search(rf"^Debian package \S+ \S+ \[{re.escape(source)}\]: /usr/share/doc/", text, re.M),
                        f"no copyright text of Debian source package {source}")
    for licence in common:
        test.assertTrue(f"\n/usr/share/common-licenses/{licence}\n====" in text, f"no text of {licence}")
    if "libc.a" in names:  # LGPL-2.1 section 6: how to relink with a modified glibc
        test.assertTrue("relink this program" in text, "no relinking statement for the static glibc")
