#!/usr/bin/env python3
"""How much resident memory each shared library costs just by being linked (benchmark, not a test).

Builds an empty C program once per library set (linked with --no-as-needed so the library is loaded
even though nothing is called), runs it and reads VmRSS / RssAnon / RssFile from /proc. The first row
is the bare program; the others show what loading each of xrayd's Debian dependencies adds before
any of its code runs. Then the same figures for an idle xrayd, so the floor and the daemon can be
compared in one run. Needs gcc and the -dev packages from scripts/debian-packages.txt.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  char line[256];
  FILE* f = fopen("/proc/self/status", "r");
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS", 5) || !strncmp(line, "RssAnon", 7) || !strncmp(line, "RssFile", 7)) fputs(line, stdout);
  return 0;
}
"""

LIBRARY_SETS = [
    ("(nothing)", []),
    ("libstdc++", ["-lstdc++"]),
    ("libcrypto (OpenSSL 3)", ["-lcrypto"]),
    ("libcurl (OpenSSL flavour)", ["-lcurl"]),
    ("libcpp-httplib", ["-lcpp-httplib"]),
    ("libsimdjson", ["-lsimdjson"]),
    ("libspdlog + libfmt", ["-lspdlog", "-lfmt"]),
    ("libyaml-cpp", ["-lyaml-cpp"]),
    ("libsqlite3", ["-lsqlite3"]),
    ("all of the above", ["-lstdc++", "-lcrypto", "-lcurl", "-lcpp-httplib", "-lsimdjson", "-lspdlog",
                          "-lfmt", "-lyaml-cpp", "-lsqlite3"]),
]


def parse_status(text):
    figures = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        figures[key.strip()] = int(value.split()[0])
    return figures


def idle_xrayd(binary):
    argv = [str(binary), "-o", "-n", "us-east-1", "-b", "127.0.0.1:0", "-t", "127.0.0.1:0",
            "--endpoint", "http://127.0.0.1:9", "-l", "error"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y"))
    try:
        time.sleep(2.0)
        if process.poll() is not None:
            raise RuntimeError(f"{binary} exited with {process.returncode}")
        text = Path(f"/proc/{process.pid}/status").read_text()
        return parse_status("\n".join(l for l in text.splitlines() if l.startswith(("VmRSS", "RssAnon", "RssFile"))))
    finally:
        process.terminate()
        process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xrayd", default=str(REPO_ROOT / "build" / "xrayd"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "empty.c"
        source.write_text("#include <string.h>\n" + PROGRAM)
        for label, libs in LIBRARY_SETS:
            exe = Path(tmp) / "empty"
            subprocess.run(["gcc", "-O1", str(source), "-o", str(exe), "-Wl,--no-as-needed", *libs], check=True)
            samples = [parse_status(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout)
                       for _ in range(3)]
            rows.append((label, min(samples, key=lambda s: s["VmRSS"])))
    if Path(args.xrayd).exists():
        rows.append(("idle xrayd (daemon mode)", idle_xrayd(args.xrayd)))
    print(f"{'linked':<28}{'RSS MB':>9}{'anon MB':>9}{'file MB':>9}")
    for label, f in rows:
        print(f"{label:<28}{f['VmRSS'] / 1024:>9.1f}{f['RssAnon'] / 1024:>9.1f}{f['RssFile'] / 1024:>9.1f}")


if __name__ == "__main__":
    sys.exit(main())
