#!/usr/bin/env python3
"""A back-end outage with and without xrayd's durable spool (issue 12; a benchmark, not a test).

Phases, one xrayd each, the same load from xray_loadgen, xray_sink standing in for X-Ray:

  memory-steady   memory-only pipeline, back-end up: rate R for --steady seconds. The baseline cost:
                  delivered segments per daemon CPU-second.
  spool-steady    the same with --spool-dir (back-end up: the spool should cost nothing).
  spool-outage    --spool-dir, the back-end down (nothing listens on its port: connection refused) for
                  --outage seconds at rate R, then it comes back (xray_sink on the same port) while the
                  load goes on for --after seconds. Figures: sent, received, delivered (distinct),
                  duplicated, dropped by reason, lost before xrayd (kernel UDP drops: sent - received),
                  peak spool size on disk, time to drain (back-end up → nothing queued or spooled), and
                  delivered per CPU-second over the whole phase, against memory-steady's.
  memory-outage   (--memory-outage) the same outage without a spool: what memory alone keeps.

With --xrayd-before OTHER (e.g. built from the base commit), memory-steady and spool-outage also run
with that binary ("-before" phases), so a change is measured against its base in one run. Drain
figures: the backlog (queued + spooled) at the back end's return, when the first delivery landed
(the first probe after the return: a down back end is probed about every second), when the spool first held nothing
(the load still running for --after seconds), and the replay rate between the two (backlog plus the
live load that arrived meanwhile, per second). "summary" gathers the figures that matter.

Defaults are the issue's: a 5-minute outage at 20k segments/s with a 1 GB spool. Scale down with
--outage/--rate/--spool-mb, e.g.

    cmake --build build --target xrayd xray_loadgen xray_sink
    python3 bench/outage_bench.py --outage 60 --rate 20000 --size-min 300 --size-max 500 --memory-outage

Python 3 standard library only; 127.0.0.1 only; kills everything it started on exit.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (children, cpu_seconds, die_with_parent, free_port, log_tail, start, stop, stop_all,  # noqa: E402
                 tcp_port_open, udp_port_bound)

REPO_ROOT = Path(__file__).resolve().parent.parent


def metrics(health_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out


def exporter(m, name="xray"):
    tag = f'exporter="{name}"'
    get = lambda metric: int(sum(v for k, v in m.items() if k.startswith(metric + "{") and tag in k))
    dropped = {}
    for k, v in m.items():
        if k.startswith("xrayd_exporter_dropped_total{") and tag in k and v:
            dropped[k.split('reason="', 1)[1].split('"', 1)[0]] = int(v)
    return {"received": get("xrayd_exporter_received_total"), "delivered": get("xrayd_exporter_delivered_total"),
            "queued": get("xrayd_exporter_queued_segments"), "spooled": get("xrayd_exporter_spooled_segments"),
            "retries": get("xrayd_exporter_retries_total"), "dropped": dropped,
            "spool_errors": int(sum(v for k, v in m.items() if k.startswith("xrayd_spool_errors_total{") and tag in k))}


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


class Sink:
    def __init__(self, binary, log_path, port=0):
        self.process = start([str(binary), "--listen", f"127.0.0.1:{port}"], log_path, stdout=subprocess.PIPE)
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("listening "):
            raise RuntimeError(f"xray_sink did not start: {line!r} {log_tail(log_path)}")
        self.port = int(line.rsplit(":", 1)[1])

    def stats(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as r:
            return json.load(r)

    def close(self):
        stop(self.process)
        self.process.stdout.close()


class Daemon:
    def __init__(self, args, workdir, name, backend_port, spool_dir=None, binary=None):
        self.port, self.health = free_port(), free_port()
        cfg = workdir / f"cfg-{name}.yaml"
        cfg.write_text(f'Version: 2\nRegion: us-east-1\nEndpoint: "http://127.0.0.1:{backend_port}"\n')
        argv = [str(binary or args.xrayd), "-o", "-c", str(cfg), "-b", f"127.0.0.1:{self.port}", "-t", f"127.0.0.1:{self.port}",
                "-l", "warn", "-m", str(args.buffer_mb), "--health-address", f"127.0.0.1:{self.health}"]
        if args.retry_max_elapsed:
            argv += ["--retry-max-elapsed", args.retry_max_elapsed]
        if spool_dir:
            argv += ["--spool-dir", str(spool_dir), "--spool-max-mb", str(args.spool_mb)]
        env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y")
        env.pop("AWS_SESSION_TOKEN", None)
        self.argv = argv
        self.process = start(argv, workdir / f"daemon-{name}.log", env=env)
        deadline = time.monotonic() + 15
        while not (udp_port_bound(self.port) and tcp_port_open(self.health)):
            if self.process.poll() is not None:
                raise RuntimeError(f"xrayd exited ({self.process.returncode}) at start:\n{log_tail(self.process.log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError("xrayd did not start within 15 s")
            time.sleep(0.05)

    def cpu(self):
        return cpu_seconds(self.process.pid)

    def account(self):
        return exporter(metrics(self.health))

    def kernel_drops(self):
        """Datagrams the kernel dropped because xrayd's UDP thread did not read them in time."""
        return int(metrics(self.health).get("xrayd_udp_kernel_drops_total", 0))

    def close(self):
        stop(self.process)


def loadgen(args, port, rate, seconds, seq_start=0):
    """Starts xray_loadgen; returns (process, reader thread, result dict filled at exit)."""
    argv = [str(args.loadgen), "--target", f"127.0.0.1:{port}", "--rate", str(rate), "--duration", str(seconds),
            "--size-min", str(args.size_min), "--size-max", str(args.size_max), "--seq-start", str(seq_start)]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    children.append(p)
    result = {}

    def read():
        out, _ = p.communicate()
        if p.returncode == 0:
            result.update(json.loads(out.decode().strip().splitlines()[-1]))
        children.remove(p)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return p, t, result


def wait_drained(daemon, sink, deadline_s, want=None):
    """Until the exporter holds nothing (queued, spooled) and, if given, the sink has `want` distinct."""
    t0 = time.monotonic()
    while True:
        a = daemon.account()
        s = sink.stats()
        if a["queued"] == 0 and a["spooled"] == 0 and a["received"] == a["delivered"] + sum(a["dropped"].values()) \
                and (want is None or s["distinct"] >= want(a)):
            return time.monotonic() - t0, a, s
        if time.monotonic() - t0 > deadline_s or daemon.process.poll() is not None:
            return None, a, s
        time.sleep(0.1)


def steady(args, workdir, name, spool, binary=None):
    print(f"{name}: {args.rate}/s for {args.steady} s", file=sys.stderr, flush=True)
    sink = Sink(args.sink, workdir / f"sink-{name}.log")
    spool_dir = workdir / f"spool-{name}" if spool else None
    d = Daemon(args, workdir, name, sink.port, spool_dir, binary)
    try:
        cpu0 = d.cpu()
        p, t, load = loadgen(args, d.port, args.rate, args.steady)
        t.join()
        drain, a, s = wait_drained(d, sink, args.drain_max, want=lambda a: a["delivered"])
        cpu = d.cpu() - cpu0
        return {"sent": load.get("sent"), "received": a["received"], "delivered": s["distinct"],
                "udp_kernel_drops": d.kernel_drops(),
                "duplicates": s["duplicates"], "dropped": a["dropped"], "cpu_seconds": round(cpu, 2),
                "delivered_per_cpu_second": round(s["distinct"] / cpu) if cpu else None,
                "drain_seconds": None if drain is None else round(drain, 1)}
    finally:
        d.close()
        sink.close()


def outage(args, workdir, name, spool, binary=None):
    print(f"{name}: {args.rate}/s, back-end down {args.outage} s, then up, load {args.after} s more",
          file=sys.stderr, flush=True)
    backend_port = free_port()  # nothing listens here during the outage
    spool_dir = workdir / f"spool-{name}" if spool else None
    d = Daemon(args, workdir, name, backend_port, spool_dir, binary)
    sink = None
    try:
        cpu0 = d.cpu()
        t0 = time.monotonic()
        p, t, load = loadgen(args, d.port, args.rate, args.outage + args.after)
        peak_spool, samples = 0, []
        while time.monotonic() - t0 < args.outage:
            time.sleep(1.0)
            a = d.account()
            disk = dir_bytes(spool_dir) if spool_dir else 0
            peak_spool = max(peak_spool, disk)
            samples.append((round(time.monotonic() - t0, 1), a["received"], a["queued"], a["spooled"],
                            sum(a["dropped"].values()), disk, d.kernel_drops()))
        at_outage_end = d.account()
        drops_outage = d.kernel_drops()
        cpu_outage = d.cpu() - cpu0
        sink = Sink(args.sink, workdir / f"sink-{name}.log", port=backend_port)
        t_up = time.monotonic()
        # The backlog drains while the load goes on (for --after seconds): when did the first delivery
        # land (the first probe after the return), and when did the spool first hold nothing?
        first_delivery = spool_empty = None
        while spool_empty is None and time.monotonic() - t_up < args.drain_max and d.process.poll() is None:
            a, s = d.account(), sink.stats()
            now = time.monotonic() - t_up
            if first_delivery is None and s["distinct"] > 0:
                first_delivery = now
            if first_delivery is not None and a["spooled"] == 0:
                spool_empty = now
            time.sleep(0.1)
        load_running_at_empty = p.poll() is None
        t.join()
        drain, a, s = wait_drained(d, sink, args.drain_max, want=lambda a: a["delivered"])
        drain_from_up = None if drain is None else round(time.monotonic() - t_up, 1)
        cpu = d.cpu() - cpu0
        sent = load.get("sent", 0)
        backlog = at_outage_end["queued"] + at_outage_end["spooled"]
        replay = None if spool_empty is None or first_delivery is None else spool_empty - first_delivery
        live_rate = sent / (args.outage + args.after)  # what the load generator achieved
        return {"sent": sent, "received": a["received"], "lost_before_xrayd": sent - a["received"],
                "udp_kernel_drops": d.kernel_drops(), "udp_kernel_drops_during_outage": drops_outage,
                "delivered": s["distinct"], "duplicates": s["duplicates"], "dropped": a["dropped"],
                "dropped_total": sum(a["dropped"].values()), "spool_errors": a["spool_errors"],
                "at_outage_end": at_outage_end, "peak_spool_mb": round(peak_spool / 1e6, 1),
                "backlog_at_backend_up": backlog,
                "first_delivery_s_after_backend_up": None if first_delivery is None else round(first_delivery, 1),
                "spool_empty_s_after_backend_up": None if spool_empty is None else round(spool_empty, 1),
                "load_still_running_when_spool_empty": load_running_at_empty,
                # Backlog plus the live load that arrived meanwhile, over the time from the first
                # delivery until the spool was empty: what replay sustained.
                "replay_segments_per_s": round((backlog + live_rate * replay) / replay) if replay else None,
                "all_drained_s_after_backend_up": drain_from_up,
                "cpu_seconds": round(cpu, 2),
                "cpu_seconds_during_outage": round(cpu_outage, 2),
                "delivered_per_cpu_second": round(s["distinct"] / cpu) if cpu else None,
                "accounting_balanced": a["received"] == a["delivered"] + a["queued"] + a["spooled"] + sum(a["dropped"].values()),
                "samples(t,received,queued,spooled,dropped,spool_bytes,udp_kernel_drops)": samples[::5]}
    finally:
        d.close()
        if sink:
            sink.close()


def find_tool(explicit, name):
    if explicit:
        return Path(explicit)
    p = REPO_ROOT / "build" / "bench" / name
    return p if p.exists() else REPO_ROOT / "build" / name


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--xrayd", default=str(REPO_ROOT / "build" / "xrayd"))
    ap.add_argument("--xrayd-before", help="another xrayd (e.g. built from the base commit): its memory-steady and "
                    "spool-outage phases run too, in the same run, for a before/after comparison")
    ap.add_argument("--loadgen")
    ap.add_argument("--sink")
    ap.add_argument("--rate", type=int, default=20000, help="segments/s offered (default 20000)")
    ap.add_argument("--outage", type=float, default=300, help="seconds the back-end is down (default 300)")
    ap.add_argument("--after", type=float, default=10, help="seconds of load after the back-end is back (default 10)")
    ap.add_argument("--steady", type=float, default=20, help="seconds of the steady baseline phases (default 20)")
    ap.add_argument("--spool-mb", type=int, default=1024, help="--spool-max-mb (default 1024)")
    ap.add_argument("--buffer-mb", type=int, default=64, help="xrayd -m: the memory queue (default 64)")
    ap.add_argument("--retry-max-elapsed", default="", help="xrayd --retry-max-elapsed (default: xrayd's)")
    ap.add_argument("--size-min", type=int, default=512)
    ap.add_argument("--size-max", type=int, default=2048)
    ap.add_argument("--drain-max", type=float, default=600, help="give up draining after this many seconds")
    ap.add_argument("--memory-outage", action="store_true", help="also run the outage without a spool")
    ap.add_argument("--skip-steady", action="store_true")
    ap.add_argument("--out", help="write the results as JSON here too")
    ap.add_argument("--workdir", help="keep configs, logs and spools here (default: a temporary directory)")
    args = ap.parse_args()
    args.loadgen = find_tool(args.loadgen, "xray_loadgen")
    args.sink = find_tool(args.sink, "xray_sink")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="xrayd-outage-"))
    workdir.mkdir(parents=True, exist_ok=True)

    def on_signal(signum, frame):
        stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    results = {"args": {k: str(v) for k, v in vars(args).items()}}
    try:
        if not args.skip_steady:
            results["memory-steady"] = steady(args, workdir, "memory-steady", spool=False)
            results["spool-steady"] = steady(args, workdir, "spool-steady", spool=True)
        if args.xrayd_before:
            if not args.skip_steady:
                results["memory-steady-before"] = steady(args, workdir, "memory-steady-before", False, args.xrayd_before)
            results["spool-outage-before"] = outage(args, workdir, "spool-outage-before", True, args.xrayd_before)
        results["spool-outage"] = outage(args, workdir, "spool-outage", spool=True)
        if args.memory_outage:
            results["memory-outage"] = outage(args, workdir, "memory-outage", spool=False)
    finally:
        stop_all()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    # The spool's cost: delivered segments per daemon CPU-second against the memory-only pipeline's
    # (memory-steady, the same binary) in the same run.
    for suffix in ("", "-before"):
        base = results.get("memory-steady" + suffix, {}).get("delivered_per_cpu_second")
        for k in ("spool-steady", "spool-outage", "memory-outage"):
            if base and results.get(k + suffix, {}).get("delivered_per_cpu_second"):
                results[k + suffix]["per_cpu_vs_memory_steady"] = round(
                    results[k + suffix]["delivered_per_cpu_second"] / base, 3)
    results["summary"] = {k: {f: v.get(f) for f in ("sent", "delivered", "duplicates", "dropped_total", "lost_before_xrayd",
                                                     "udp_kernel_drops", "udp_kernel_drops_during_outage",
                                                     "delivered_per_cpu_second", "per_cpu_vs_memory_steady",
                                                     "backlog_at_backend_up", "first_delivery_s_after_backend_up",
                                                     "spool_empty_s_after_backend_up", "replay_segments_per_s",
                                                     "all_drained_s_after_backend_up") if f in v}
                          for k, v in results.items() if k not in ("args", "summary")}
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
