#!/usr/bin/env python3
"""Third-party licence notices for a built binary (xrayd or the hello example), derived from its link.

    scripts/licence_notices.py BINARY [--out FILE[.xz]] [--compact]

What the binary contains is found, not listed by hand, so a new dependency cannot be forgotten:
  - the static archives and objects the linker took (BINARY.map, written by every link of xrayd and
    hello: cmake/Release.cmake's xrayd_link_map), each owned by a Debian -dev package (dpkg -S);
  - the shared libraries the loader maps (ldd), for a dynamic build (the image ships them too);
  - the headers compiled into the linked objects (`ninja -t deps` of the build tree BINARY sits in):
    header-only libraries (Boost.Asio/Beast, fmt, spdlog, nlohmann-json, cpp-httplib) and inline code;
  - the npm packages bundled into the web UI (ui/package-lock.json's non-dev packages), when the
    embedded UI is linked.
Each Debian package's /usr/share/doc/<package>/copyright (the authoritative text for the exact installed
version) is copied in, once, followed by the /usr/share/common-licenses texts those files refer to (a
FROM scratch image has no /usr/share/common-licenses). The project's own archives (build tree) are
skipped, except libxrayd_simdjson.a: Debian's simdjson source of the installed version (Release.cmake).

--compact (the image, which must stay under AWS's size): a copyright file over 256 KB (Boost's, 2 MB:
Files stanzas listing thousands of source files) keeps only its header stanza, the Files stanzas
matching a header actually compiled in (their file lists cut to the matching patterns), and the
License stanzas those use. The .deb carries every file whole.

Fails (exit 1, a message) when a linked file has no owner, a copyright file is missing, or BINARY has
neither a link map nor shared libraries: a notice list that might be incomplete is never written.
"""
import argparse
import fnmatch
import json
import lzma
import os
import re
import subprocess
import sys

COMMON = "/usr/share/common-licenses/"
COMPACT_LIMIT = 256 * 1024
ARCHIVE_MEMBER = re.compile(r"([^\s()]+\.a)\(([^\s()]+)\)")  # libfoo.a(member.o)
OBJECT = re.compile(r"(?<![^\s])([^\s()*?\[\]]+\.o)(?=\s|$)")  # an object file named on its own (not a glob)


def fail(message):
    print(f"licence_notices.py: {message}", file=sys.stderr)
    sys.exit(1)


def build_dir_of(binary):
    d = os.path.dirname(os.path.abspath(binary))
    while d != "/":
        if os.path.exists(os.path.join(d, "CMakeCache.txt")):
            return d
        d = os.path.dirname(d)
    fail(f"{binary} is not inside a CMake build tree (no CMakeCache.txt above it)")


def read_map(path):
    """What the linker took, from a GNU ld or gold map: ({archive: {member}}, {object file}). Paths are
    as the linker named them (absolute for the system's, relative to the build tree for the project's)."""
    with open(path, errors="replace") as f:
        text = f.read()
    archives, objects = {}, set()
    for archive, member in ARCHIVE_MEMBER.findall(text):
        archives.setdefault(os.path.normpath(archive), set()).add(member)
    objects.update(os.path.normpath(o) for o in OBJECT.findall(text))
    return archives, objects


def shared_libraries(binary):
    r = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if r.returncode != 0:
        return []
    libs = []
    for line in r.stdout.splitlines():
        m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)", line)
        if m:
            libs.append(m.group(1))
    return libs


def owners(paths):
    """{path: package} for every path (dpkg -S on the path, then on its resolved path)."""
    result = {}
    todo = sorted(set(paths))
    for attempt in (lambda p: p, os.path.realpath):
        if not todo:
            break
        queries = {attempt(p): p for p in todo}
        out = subprocess.run(["dpkg", "-S", *queries], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("diversion ") or ": " not in line:
                continue
            pkgs, path = line.split(": ", 1)
            if path in queries:
                result[queries[path]] = pkgs.split(",")[0].split(":")[0].strip()
        todo = [p for p in todo if p not in result]
    if todo:
        fail("no Debian package owns: " + ", ".join(todo[:10]) + (" ..." if len(todo) > 10 else ""))
    return result


def header_deps(build, objects):
    """{object path relative to the build tree: [headers]} from ninja's dependency log."""
    r = subprocess.run(["ninja", "-C", build, "-t", "deps", *objects], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"`ninja -t deps` failed in {build} (a Ninja build is needed): {r.stderr.strip()}")
    deps, current = {}, None
    for line in r.stdout.splitlines():
        if line and not line[0].isspace():
            current = line.split(":", 1)[0]
            deps[current] = []
        elif line.strip() and current:
            deps[current].append(line.strip())
    missing = [o for o in objects if not deps.get(o)]
    if missing:  # e.g. "deps not found": its headers would be missed silently
        fail("ninja records no headers for: " + ", ".join(missing[:5]))
    return deps


def linked_objects(build, archives):
    """The build tree's object files behind the members of its own archives."""
    wanted = {}
    for archive, members in archives.items():
        path = archive if os.path.isabs(archive) else os.path.join(build, archive)
        path = os.path.realpath(path)
        if not path.startswith(os.path.realpath(build) + "/"):
            continue
        rel_dir = os.path.relpath(os.path.dirname(path), build)
        target = os.path.basename(path)[3:-2]  # lib<target>.a
        wanted[os.path.normpath(os.path.join(rel_dir, "CMakeFiles", target + ".dir"))] = members
    found = []
    for d, members in wanted.items():
        for root, _, files in os.walk(os.path.join(build, d)):
            found += [os.path.relpath(os.path.join(root, f), build) for f in files if f in members]
    return found


def package_info(packages):
    fmt = "${Package}\t${Version}\t${source:Package}\t${source:Version}\n"
    out = subprocess.run(["dpkg-query", "-W", "-f", fmt, *sorted(packages)], capture_output=True, text=True).stdout
    info = {}
    for line in out.splitlines():
        name, version, source, source_version = line.split("\t")
        info[name] = (version, source, source_version)
    return info


def dep5_candidates(header):
    """Where an installed header (relative to /usr/include) may sit in its upstream source tree: as is, or
    in a modular tree (Boost's) boost/a/b.hpp in libs/a/include/ or libs/a/b/include/. {lib: [paths]}."""
    parts = header.split("/")
    libs = [parts[1].split(".")[0]] if len(parts) > 1 else []
    if len(parts) > 2:
        libs.append(parts[1] + "/" + parts[2].split(".")[0])
    found = {"": [header]}
    for lib in libs:
        found.setdefault(lib.split("/")[0], []).append(f"libs/{lib}/include/{header}")
    return found


def dep5_compact(text, rel_headers):
    """A DEP-5 copyright file cut to its header stanza, the Files stanzas whose patterns (upstream source
    paths; `*` spans directories) cover a header compiled in — listing only those patterns — and the
    License stanzas they name."""
    by_lib = {}  # first directory under libs/ ("" for any) -> candidate source paths
    for h in rel_headers:
        for lib, paths in dep5_candidates(h).items():
            by_lib.setdefault(lib, []).extend(paths)
            by_lib.setdefault("", []).extend(paths if lib else [])
    headers = set(rel_headers)
    every = set(by_lib.get("", ()))
    wild = re.compile(r"[*?\[]")

    def covers(pattern):  # literal patterns (most) by set lookup; a wildcard only against its library's paths
        suffix = pattern.split("/include/", 1)[1] if "/include/" in pattern else None
        if not wild.search(pattern):
            return pattern in every or suffix in headers
        lib = pattern.split("/")[1] if pattern.startswith("libs/") and pattern.count("/") > 1 else ""
        if wild.search(lib):
            lib = ""
        if lib and lib not in by_lib and suffix is None:
            return False
        if suffix is not None and wild.search(suffix):
            regex = re.compile(fnmatch.translate(suffix))
            if any(regex.match(h) for h in headers):
                return True
        regex = re.compile(fnmatch.translate(pattern))
        return any(regex.match(c) for c in by_lib.get(lib, ()))

    stanzas = [s for s in re.split(r"\n\s*\n", text) if s.strip()]
    keep, licences = [stanzas[0]], set()
    for s in stanzas[1:]:
        m = re.match(r"Files:((?:.*)(?:\n[ \t].*)*)", s)
        matched = [p for p in m.group(1).split() if covers(p)] if m else []
        if matched:  # the stanza, its file list cut to the patterns that cover a compiled-in header
            keep.append("Files: " + "\n ".join(matched) + s[m.end():])
            lic = re.search(r"^License:\s*(.+)$", s, re.M)
            if lic:
                licences.update(re.split(r"\s+(?:or|and)\s+|\s*,\s*", lic.group(1).strip()))
    for s in stanzas[1:]:
        m = re.match(r"License:\s*(\S+)\s*\n", s)
        if m and m.group(1) in licences:
            keep.append(s)
    return "\n\n".join(keep) + "\n"


def npm_components(repo):
    """[(name, version, licence, text)] for the web UI's bundled (non-dev) npm packages."""
    with open(os.path.join(repo, "ui", "package-lock.json")) as f:
        lock = json.load(f)
    result = []
    for key, meta in sorted(lock.get("packages", {}).items()):
        if not key or meta.get("dev"):
            continue
        d = os.path.join(repo, "ui", key)
        files = sorted(f for f in os.listdir(d) if f.upper().startswith(("LICENSE", "LICENCE", "COPYING"))) \
            if os.path.isdir(d) else []
        if not files:
            fail(f"ui/{key}: no LICENSE file (run `npm ci` in ui/)")
        with open(os.path.join(d, files[0]), errors="replace") as f:
            result.append((key.split("node_modules/")[-1], meta.get("version", "?"), meta.get("license", "?"), f.read()))
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--out", help="write here, xz-compressed if FILE ends in .xz (default: stdout)")
    ap.add_argument("--compact", action="store_true", help="cut copyright files over 256 KB to what is linked")
    args = ap.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = os.path.abspath(args.binary)
    build = build_dir_of(binary)
    map_path = binary + ".map"
    libs = shared_libraries(binary)
    archives, sys_objects = read_map(map_path) if os.path.exists(map_path) else ({}, set())
    if not archives and not libs:
        fail(f"{binary}: no link map ({map_path}) and no shared libraries: cannot tell what it contains")

    linked = {}  # Debian-owned path -> what to call it
    for a in archives:
        if a.startswith("/"):
            linked[os.path.normpath(a)] = os.path.basename(a)
    for o in sys_objects:
        if o.startswith("/"):
            linked[o] = os.path.basename(o)
    for lib in libs:
        linked[lib] = os.path.basename(lib)
    own = [a for a in archives if not a.startswith("/")]
    if any(os.path.basename(a) == "libxrayd_simdjson.a" for a in own):
        linked["/usr/include/simdjson.h"] = "libxrayd_simdjson.a (Debian's simdjson source, same version)"
    objects = linked_objects(build, {a: m for a, m in archives.items() if not a.startswith("/")})
    main_obj = [o for o in sys_objects if not o.startswith("/")]  # e.g. CMakeFiles/xrayd.dir/src/main.cc.o
    headers = set()
    for hs in header_deps(build, objects + main_obj).values():
        headers.update(os.path.normpath(h) for h in hs if h.startswith("/usr/"))
    owner = owners(list(linked) + sorted(headers))

    by_pkg = {}  # package -> {"linked": set, "headers": set}
    for path, name in linked.items():
        by_pkg.setdefault(owner[path], {"linked": set(), "headers": set()})["linked"].add(name)
    for h in headers:
        by_pkg.setdefault(owner[h], {"linked": set(), "headers": set()})["headers"].add(h)
    info = package_info(by_pkg)
    ui = npm_components(repo) if any(o.endswith("embedded_assets.cc.o") for o in objects) else []

    out = [f"Third-party notices for {os.path.basename(binary)}",
           "",
           "This file lists the third-party code in this binary and the copyright and licence texts of each",
           "part, as Debian 12 ships them for the exact package versions it was built from. The list is",
           "derived from the link (the linker's map of archives and objects it took, the shared libraries the",
           "binary loads, and the headers compiled into the linked objects) by scripts/licence_notices.py.",
           "",
           "Components (Debian package version [source package]: what the binary takes from it):"]
    for pkg in sorted(by_pkg):
        version, source, source_version = info.get(pkg, ("?", pkg, "?"))
        parts = sorted(by_pkg[pkg]["linked"])
        rel = [h.rsplit("/include/", 1)[-1] for h in by_pkg[pkg]["headers"]]
        tops = sorted({"/".join(r.split("/")[:2]) if r.count("/") > 1 else r for r in rel})
        what = ", ".join(parts + ([f"headers {' '.join(tops[:6])}{' ...' if len(tops) > 6 else ''}"] if tops else []))
        out.append(f"  {pkg} {version} [{source} {source_version}]: {what}")
    for name, version, licence, _ in ui:
        out.append(f"  npm {name} {version} [{licence}]: bundled into the embedded web UI")
    if any(os.path.basename(p) in ("libc.a", "libm.a") for p in linked):
        out += ["",
                "The GNU C Library is linked statically. Its licence (LGPL-2.1-or-later, section 6) lets you",
                "modify it and relink this program with your version: the complete source of this program and",
                "its build recipe are in its source repository (cmake -DXRAYD_STATIC=ON, cmake/Release.cmake;",
                "the linker takes libc.a from the library path, so a modified libc.a placed first relinks it;",
                "-DXRAYD_STATIC_GLIBC=OFF links glibc as a shared library instead). The source of every Debian",
                "package above, at the version given, is available from Debian (`apt-get source",
                "SOURCE=VERSION`, or https://snapshot.debian.org/package/SOURCE/VERSION/)."]

    common, texts = set(), {}
    for pkg in sorted(by_pkg):
        path = f"/usr/share/doc/{pkg}/copyright"
        if not os.path.exists(path):
            fail(f"{path} is missing (package {pkg})")
        with open(path, errors="replace") as f:
            text = f.read()
        note = ""
        if args.compact and len(text) > COMPACT_LIMIT and text.startswith("Format:"):
            rel = {h.split("/usr/include/", 1)[-1] for h in by_pkg[pkg]["headers"]}
            text = dep5_compact(text, rel)
            note = " (cut to the files compiled in; whole in Debian's package and in xrayd's .deb)"
        common.update(m.rstrip(".") for m in re.findall(re.escape(COMMON) + r"[A-Za-z0-9.+-]+", text))
        version, source, _ = info.get(pkg, ("?", pkg, "?"))
        if text in texts:  # e.g. libstdc++-12-dev and libgcc-12-dev (both gcc-12-base's): one text, named twice
            text = f"(the same text as Debian package {texts[text]}'s above)"
        else:
            texts[text] = pkg
        out += ["", "=" * 100, f"Debian package {pkg} {version} [{source}]: {path}{note}", "=" * 100, text.rstrip()]
    for name, version, licence, text in ui:
        out += ["", "=" * 100, f"npm package {name} {version} ({licence}): its LICENSE file", "=" * 100, text.rstrip()]
    for path in sorted({os.path.realpath(p) for p in common if os.path.isfile(p)}):  # GPL -> GPL-3
        out += ["", "=" * 100, path, "=" * 100]
        with open(path, errors="replace") as f:
            out.append(f.read().rstrip())
    text = "\n".join(out) + "\n"
    if args.out and args.out.endswith(".xz"):  # xz -9e: a fifth smaller than gzip -9 here
        with open(args.out, "wb") as f:
            f.write(lzma.compress(text.encode(), preset=9 | lzma.PRESET_EXTREME))
    elif args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
