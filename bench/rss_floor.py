#!/usr/bin/env python3
"""How much resident memory each shared library costs just by being linked (benchmark, not a test).

Builds an empty C program once per library set (linked with --no-as-needed so the library is loaded
even though nothing is called), runs it and reads VmRSS / RssAnon / RssFile from /proc. The first row
is the bare program; the others show what loading each of xrayd's Debian dependencies adds before
any of its code runs. Then the same figures for an idle xrayd, so the floor and the daemon can be
compared in one run. Needs gcc and the -dev packages from scripts/debian-packages.txt.
"""

import argparse
import json
import os
import socket
import shutil
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


def idle_xrayd(binary, serve=False):
    """Idle RSS of daemon mode with the health address on (the image's command line), or of `serve`."""
    if serve:
        data = tempfile.mkdtemp(prefix="rss-floor-")
        argv = [str(binary), "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "-b", "127.0.0.1:0",
                "-t", "127.0.0.1:0", "-l", "error"]
    else:
        argv = [str(binary), "-o", "-n", "us-east-1", "-b", "127.0.0.1:0", "-t", "127.0.0.1:0",
                "--health-address", "127.0.0.1:0", "--endpoint", "http://127.0.0.1:9", "-l", "error"]
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
        if serve:
            shutil.rmtree(data, ignore_errors=True)


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_under_load(binary, loadgen, rate, seconds):
    """`xrayd serve` fed by xray_loadgen at `rate` segments/s for `seconds` (every document stored in
    SQLite): the largest VmRSS / RssAnon / RssFile sampled every 50 ms during the load and 3 s after."""
    data = tempfile.mkdtemp(prefix="rss-floor-load-")
    port = free_udp_port()
    argv = [str(binary), "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "-b", f"127.0.0.1:{port}",
            "-t", f"127.0.0.1:{port}", "-l", "error"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    try:
        time.sleep(2.0)
        if process.poll() is not None:
            raise RuntimeError(f"{binary} serve exited with {process.returncode}")
        load = subprocess.Popen([str(loadgen), "--target", f"127.0.0.1:{port}", "--rate", str(rate), "--duration",
                                 str(seconds), "--size-min", "512", "--size-max", "2048"],
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        end = None
        while end is None or time.monotonic() < end:
            if end is None and load.poll() is not None:
                end = time.monotonic() + 3.0
            text = Path(f"/proc/{process.pid}/status").read_text()
            for key, value in parse_status("\n".join(l for l in text.splitlines()
                                                     if l.startswith(("VmRSS", "RssAnon", "RssFile")))).items():
                peak[key] = max(peak[key], value)
            time.sleep(0.05)
        sent = json.loads(load.stdout.read().decode().strip().splitlines()[-1])["sent"]
        return peak, sent
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(data, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xrayd", action="append",
                        help="an xrayd binary to measure idle (repeatable: e.g. build/xrayd and build-release/xrayd "
                             "side by side); default build/xrayd")
    parser.add_argument("--load-rate", type=int, default=0,
                        help="also measure `xrayd serve` under this many segments/s (xray_loadgen; default: off)")
    parser.add_argument("--load-seconds", type=float, default=10, help="length of the serve load (default 10 s)")
    parser.add_argument("--loadgen", default=str(REPO_ROOT / "build" / "bench" / "xray_loadgen"),
                        help="xray_loadgen binary (default build/bench/xray_loadgen)")
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
    for binary in args.xrayd or [str(REPO_ROOT / "build" / "xrayd")]:
        if Path(binary).exists():
            name = os.path.relpath(binary)
            rows.append((f"idle {name} daemon+health", idle_xrayd(binary)))
            rows.append((f"idle {name} serve", idle_xrayd(binary, serve=True)))
            if args.load_rate:
                peak, sent = serve_under_load(binary, args.loadgen, args.load_rate, args.load_seconds)
                rows.append((f"peak {name} serve, {args.load_rate}/s ({sent} sent)", peak))
    width = max(len(label) for label, _ in rows) + 2
    print(f"{'linked':<{width}}{'RSS MB':>9}{'anon MB':>9}{'file MB':>9}")
    for label, f in rows:
        print(f"{label:<{width}}{f['VmRSS'] / 1024:>9.1f}{f['RssAnon'] / 1024:>9.1f}{f['RssFile'] / 1024:>9.1f}")


if __name__ == "__main__":
    sys.exit(main())
