#!/usr/bin/env python3
"""Side-by-side benchmark of xrayd and AWS's X-Ray daemon (benchmark driver, not a test).

Runs each daemon in turn with the same command line, the same load (xray_loadgen) and a fresh local
sink (xray_sink) standing in for the X-Ray API, and reports for each: idle RSS, delivery and CPU cost
at a fixed rate, delivery and CPU cost under a flood, and peak RSS; then the xrayd/aws ratio of each
figure. Python 3 standard library only. See bench/README.md.
"""

import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1

children = []  # every process started here, killed on exit


def die_with_parent():
    """preexec_fn: have the kernel kill the child if this script dies without cleaning up."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def start(argv, log_path, env=None, stdout=None):
    log = open(log_path, "wb")
    process = subprocess.Popen(argv, stdout=stdout if stdout is not None else log, stderr=log,
                               stdin=subprocess.DEVNULL, env=env, preexec_fn=die_with_parent)
    process.log_path = log_path
    log.close()
    children.append(process)
    return process


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process in children:
        children.remove(process)


def stop_all():
    for process in list(children):
        stop(process)


def log_tail(path, lines=15):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def free_port():
    """A port on 127.0.0.1 free for both UDP and TCP, from the kernel's ephemeral range."""
    for _ in range(100):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            udp.close()
            tcp.close()
    raise RuntimeError("no free port found")


def udp_port_bound(port):
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f)  # header
                for line in f:
                    local_address = line.split()[1]  # hex ADDRESS:PORT
                    if int(local_address.rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


def tcp_port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def proc_status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class RssSampler:
    """Samples /proc/PID/status every 50 ms while a phase runs: the largest VmRSS, RssAnon and RssFile
    seen (VmHWM alone covers the whole life of the process and has no anonymous/file split)."""

    FIELDS = ("VmRSS", "RssAnon", "RssFile")

    def __init__(self, pid):
        import threading
        self.pid, self.peak, self.stopped = pid, {f: 0 for f in self.FIELDS}, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.wait(0.05):
            try:
                for field in self.FIELDS:
                    self.peak[field] = max(self.peak[field], proc_status_kb(self.pid, field))
            except (OSError, KeyError):
                return

    def stop(self):
        self.stopped.set()
        self.thread.join()
        return {"peak_rss_kb": self.peak["VmRSS"], "peak_rss_anon_kb": self.peak["RssAnon"],
                "peak_rss_file_kb": self.peak["RssFile"]}


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of stat(5)


class Sink:
    def __init__(self, binary, workdir, name):
        self.process = start([str(binary), "--listen", "127.0.0.1:0"], workdir / f"sink-{name}.log",
                             stdout=subprocess.PIPE)
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("listening "):
            raise RuntimeError(f"xray_sink did not start: {line!r} {log_tail(self.process.log_path)}")
        self.port = int(line.rsplit(":", 1)[1])

    def stats(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as response:
            return json.load(response)

    def close(self):
        stop(self.process)
        self.process.stdout.close()


def run_loadgen(args, port, rate, seconds, seq_start):
    argv = [str(args.loadgen), "--target", f"127.0.0.1:{port}", "--rate", str(rate), "--duration", str(seconds),
            "--size-min", str(args.size_min), "--size-max", str(args.size_max), "--seq-start", str(seq_start)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    children.append(process)
    out, _ = process.communicate(timeout=seconds + 60)
    children.remove(process)
    if process.returncode != 0:
        raise RuntimeError(f"xray_loadgen failed ({process.returncode})")
    return json.loads(out.decode().strip().splitlines()[-1])


def wait_for_drain(sink, daemon, quiet_seconds, max_seconds):
    """Polls the sink until its document count has not grown for quiet_seconds (or max_seconds pass)."""
    started = time.monotonic()
    last = sink.stats()
    last_change = started
    while True:
        time.sleep(0.25)
        now = time.monotonic()
        current = sink.stats()
        if current["documents"] != last["documents"]:
            last, last_change = current, now
        if now - last_change >= quiet_seconds or now - started >= max_seconds or daemon.poll() is not None:
            return current, now - started


def measure_load(args, label, daemon, sink, port, rate, seconds, seq_start):
    print(f"  {label}: {'max' if rate == 0 else rate}/s for {seconds} s ...", file=sys.stderr, flush=True)
    before_stats = sink.stats()
    before_cpu = cpu_seconds(daemon.pid)
    sampler = RssSampler(daemon.pid)
    load = run_loadgen(args, port, rate, seconds, seq_start)
    after_stats, drain_seconds = wait_for_drain(sink, daemon, args.drain_quiet, args.drain_max)
    peaks = sampler.stop()
    if daemon.poll() is not None:
        raise RuntimeError(f"daemon exited ({daemon.returncode}) during {label}:\n{log_tail(daemon.log_path)}")
    cpu = cpu_seconds(daemon.pid) - before_cpu
    sent = load["sent"]
    documents = after_stats["documents"] - before_stats["documents"]
    delivered = after_stats["distinct"] - before_stats["distinct"]  # sequence numbers seen for the first time
    return {
        "target_rate": rate,
        "seconds": seconds,
        "sent": sent,
        "send_rate": load["rate"],
        "delivered": delivered,
        "documents": documents,
        "duplicates": after_stats["duplicates"] - before_stats["duplicates"],
        "requests": after_stats["requests"] - before_stats["requests"],
        "loss_pct": 100.0 * (sent - delivered) / sent if sent else 0.0,
        "cpu_seconds": cpu,
        "delivered_per_cpu_second": delivered / cpu if cpu > 0 else None,
        "drain_seconds": drain_seconds,
        "next_seq": load["next_seq"],
        **peaks,
    }


def bench_daemon(args, name, binary, workdir):
    print(f"{name}: {binary}", file=sys.stderr, flush=True)
    sink = Sink(args.sink, workdir, name)
    daemon = None
    try:
        config = workdir / f"cfg-{name}.yaml"
        config.write_text(f'Version: 2\nRegion: us-east-1\nEndpoint: "http://127.0.0.1:{sink.port}"\n' +
                          "".join(line + "\n" for line in args.config_line))
        port = free_port()
        env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y")
        env.pop("AWS_SESSION_TOKEN", None)
        argv = [str(binary), "-o", "-c", str(config), "-b", f"127.0.0.1:{port}", "-t", f"127.0.0.1:{port}",
                "-l", "error"]
        if name != "aws":  # xrayd as the image runs it: /healthz, /readyz, /metrics on (AWS's daemon has none)
            argv += ["--health-address", "127.0.0.1:0"]
        daemon = start(argv, workdir / f"daemon-{name}.log", env=env)
        deadline = time.monotonic() + 15
        while not (udp_port_bound(port) and tcp_port_open(port)):
            if daemon.poll() is not None:
                raise RuntimeError(f"{name} exited ({daemon.returncode}) at start:\n{log_tail(daemon.log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not bind 127.0.0.1:{port} within 15 s")
            time.sleep(0.05)
        time.sleep(2.0)
        result = {"binary": str(binary), "binary_bytes": os.path.getsize(os.path.realpath(binary)),
                  "idle_rss_kb": proc_status_kb(daemon.pid, "VmRSS"),
                  "idle_rss_anon_kb": proc_status_kb(daemon.pid, "RssAnon"),
                  "idle_rss_file_kb": proc_status_kb(daemon.pid, "RssFile")}
        result["fixed"] = measure_load(args, "fixed rate", daemon, sink, port, args.rate, args.seconds, 0)
        result["flood"] = measure_load(args, "flood", daemon, sink, port, 0, args.flood_seconds,
                                       result["fixed"]["next_seq"])
        result["peak_rss_kb"] = proc_status_kb(daemon.pid, "VmHWM")
        result["sink"] = sink.stats()
        return result
    finally:
        if daemon is not None:
            stop(daemon)
        sink.close()


# (label, how to read the figure from a result, format, which way is better)
FIGURES = [
    ("binary size (MB)", lambda r: r["binary_bytes"] / 1e6, "{:.2f}", "lower"),
    ("idle RSS (MB)", lambda r: r["idle_rss_kb"] / 1024, "{:.1f}", "lower"),
    # anonymous: heap, stacks, runtime; file: mapped pages of the binary and its shared libraries
    ("idle RSS anon (MB)", lambda r: r["idle_rss_anon_kb"] / 1024, "{:.1f}", "lower"),
    ("idle RSS file (MB)", lambda r: r["idle_rss_file_kb"] / 1024, "{:.1f}", "lower"),
    ("fixed: sent", lambda r: r["fixed"]["sent"], "{:d}", None),
    ("fixed: delivered", lambda r: r["fixed"]["delivered"], "{:d}", "higher"),
    ("fixed: loss %", lambda r: r["fixed"]["loss_pct"], "{:.2f}", "lower"),
    ("fixed: daemon CPU s", lambda r: r["fixed"]["cpu_seconds"], "{:.2f}", "lower"),
    ("fixed: delivered / CPU-s", lambda r: r["fixed"]["delivered_per_cpu_second"], "{:.0f}", "higher"),
    # sampled every 50 ms during the phase and its drain (run.py's RssSampler)
    ("fixed: peak RSS (MB)", lambda r: r["fixed"]["peak_rss_kb"] / 1024, "{:.1f}", "lower"),
    ("fixed: peak RSS anon (MB)", lambda r: r["fixed"]["peak_rss_anon_kb"] / 1024, "{:.1f}", "lower"),
    ("flood: sent", lambda r: r["flood"]["sent"], "{:d}", None),
    ("flood: delivered", lambda r: r["flood"]["delivered"], "{:d}", "higher"),
    ("flood: loss %", lambda r: r["flood"]["loss_pct"], "{:.2f}", "lower"),
    ("flood: daemon CPU s", lambda r: r["flood"]["cpu_seconds"], "{:.2f}", "lower"),
    ("flood: delivered / CPU-s", lambda r: r["flood"]["delivered_per_cpu_second"], "{:.0f}", "higher"),
    ("flood: peak RSS (MB)", lambda r: r["flood"]["peak_rss_kb"] / 1024, "{:.1f}", "lower"),
    ("flood: peak RSS anon (MB)", lambda r: r["flood"]["peak_rss_anon_kb"] / 1024, "{:.1f}", "lower"),
    ("peak RSS, VmHWM (MB)", lambda r: r["peak_rss_kb"] / 1024, "{:.1f}", "lower"),
]


def figure(result, read):
    try:
        return read(result) if result and "error" not in result else None
    except (KeyError, TypeError):
        return None


def ratio(mine, theirs):
    if mine is None or theirs is None:
        return None
    if theirs == 0:
        return 1.0 if mine == 0 else None
    return mine / theirs


def print_table(args, results):
    """Prints one column per daemon and, with AWS's daemon in the run, one ratio column per other daemon.
    Returns {label: {figure: ratio over aws}}."""
    names = [n for n in results if n != "aws" and "error" not in results[n]]
    if "aws" in results and "error" not in results["aws"]:
        names.append("aws")
    for name, result in results.items():
        if "error" in result:
            print(f"\n{name} ({result['binary']}) failed: {result['error']}")
    if not names:
        return {}
    width = max(14, max(len(n) for n in names) + 2)
    header = f"{'figure':<28}" + "".join(f"{n:>{width}}" for n in names)
    compared = [n for n in names if n != "aws"] if names[-1] == "aws" and len(names) > 1 else []
    for n in compared:
        header += f"{n + '/aws':>{max(12, len(n) + 6)}}"
    if compared:
        header += "  better"
    print(f"\nfixed rate {args.rate}/s for {args.seconds} s, flood {args.flood_seconds} s, "
          f"segments {args.size_min}-{args.size_max} B")
    print(header)
    print("-" * len(header))
    ratios = {n: {} for n in compared}
    for label, read, fmt, better in FIGURES:
        values = {n: figure(results[n], read) for n in names}
        row = f"{label:<28}"
        for n in names:
            value = values[n]
            row += f"{(fmt.format(value) if value is not None else 'n/a'):>{width}}"
        for n in compared:
            r = ratio(values[n], values["aws"])
            ratios[n][label] = r
            row += f"{(f'{r:.2f}' if r is not None else 'n/a'):>{max(12, len(n) + 6)}}"
        if compared:
            row += f"  {better or ''}"
        print(row)
    return ratios


def find_tool(explicit, name):
    if explicit:
        return Path(explicit).resolve()
    for candidate in (REPO_ROOT / "build" / "bench" / name, REPO_ROOT / "build" / name):
        if candidate.exists():
            return candidate
    return REPO_ROOT / "build" / "bench" / name


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xrayd", default=str(REPO_ROOT / "build" / "xrayd"), help="xrayd binary")
    parser.add_argument("--peer", default=str(REPO_ROOT.parent / "shared" / "peer" / "xray-daemon"),
                        help="AWS X-Ray daemon binary")
    parser.add_argument("--only", choices=["xrayd", "aws"], help="benchmark one daemon only")
    parser.add_argument("--also", action="append", default=[], metavar="LABEL=PATH",
                        help="another xrayd binary (e.g. main's build beside a branch's), run after xrayd and "
                             "before aws with the same load; its own column and LABEL/aws ratios (repeatable)")
    parser.add_argument("--rate", type=int, default=20000, help="fixed-rate phase, segments/s (default 20000)")
    parser.add_argument("--seconds", type=float, default=10, help="fixed-rate phase length (default 10)")
    parser.add_argument("--flood-seconds", type=float, default=5, help="flood phase length (default 5)")
    parser.add_argument("--size-min", type=int, default=512, help="smallest datagram, bytes (default 512)")
    parser.add_argument("--size-max", type=int, default=2048, help="largest datagram, bytes (default 2048)")
    parser.add_argument("--drain-quiet", type=float, default=2.5,
                        help="drain ends once the sink saw nothing new for this long (default 2.5 s)")
    parser.add_argument("--drain-max", type=float, default=10, help="longest drain wait (default 10 s)")
    parser.add_argument("--loadgen", help="xray_loadgen binary (default build/bench/xray_loadgen)")
    parser.add_argument("--sink", help="xray_sink binary (default build/bench/xray_sink)")
    parser.add_argument("--config-line", action="append", default=[], metavar="YAML",
                        help="a line added to every daemon's config file (e.g. 'Concurrency: 2')")
    parser.add_argument("--out", help="also write the results as JSON to this file")
    parser.add_argument("--workdir", help="keep configs and logs here (default: a temporary directory)")
    args = parser.parse_args()
    args.loadgen = find_tool(args.loadgen, "xray_loadgen")
    args.sink = find_tool(args.sink, "xray_sink")
    for tool in (args.loadgen, args.sink):
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} not found; build it: cmake --build build --target xray_loadgen xray_sink")

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: it may arrive ignored
        signal.signal(signum, on_signal)

    daemons = [("xrayd", Path(args.xrayd))]
    for extra in args.also:
        label, sep, path = extra.partition("=")
        if not sep or not label or not path or label in ("xrayd", "aws"):
            sys.exit(f"--also {extra!r}: expected LABEL=PATH with a LABEL other than xrayd and aws")
        daemons.append((label, Path(path)))
    daemons.append(("aws", Path(args.peer)))
    if args.only:
        daemons = [d for d in daemons if d[0] == args.only]

    temporary = None
    if args.workdir:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        temporary = tempfile.TemporaryDirectory(prefix="xrayd-bench-")
        workdir = Path(temporary.name)

    results = {}
    failed = False
    try:
        for name, binary in daemons:
            if not os.access(binary, os.X_OK):
                results[name] = {"binary": str(binary), "error": "not found or not executable"}
                print(f"{name}: {binary} not found, skipped", file=sys.stderr)
                failed = True
                continue
            try:
                results[name] = bench_daemon(args, name, binary.resolve(), workdir)
            except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as error:
                results[name] = {"binary": str(binary), "error": str(error)}
                print(f"{name}: failed: {error}", file=sys.stderr)
                failed = True
    finally:
        stop_all()

    ratios = print_table(args, results)
    if args.out:
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        Path(args.out).write_text(json.dumps({"config": config, "results": results,
                                             "ratios_xrayd_over_aws": ratios.get("xrayd", {}),
                                             "ratios_over_aws": ratios},
                                             indent=2) + "\n")
    if temporary is not None:
        if failed:
            print(f"(logs were in {workdir}; pass --workdir to keep them)", file=sys.stderr)
        temporary.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        stop_all()
