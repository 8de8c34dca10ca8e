#!/usr/bin/env python3
"""API read latency of `xrayd serve` idle and while it ingests hard (issue 14: readers never wait
for the writer). Not a test.

The store is filled once (store_bench.py's realistic traces, --prefill segments over the last 6 h,
at the store's own pace) and copied for every run, so every binary reads the same data. Each round
runs every binary given, back to back, in turn: start `serve` on the copy, then
  idle    the reads alone, for --seconds;
  ingest  the same reads while xray_loadgen sends --rate segments/s over UDP, for --seconds.
The reads come from one client on one kept-alive connection (as Grafana's data source keeps one),
at a steady pace (one request every --pace seconds, never bursting to catch up), in a cycle:
BatchGetTraces (5 known ids), GetTraceSummaries first page over the whole range with an annotation
filter, with a service filter, unfiltered, and GetServiceGraph over the last hour. With --busy N,
N more clients list the whole range back to back meanwhile (a dashboard's other panels), holding
reader connections and handler slots. Per binary, phase and operation: p50/p99/max in ms, and the
ratios of p50/p99 against the first binary. When the server sends `Server-Timing` (xrayd with
XRAYD_SERVER_TIMING=1, set here), the p50/p99 of its parts are printed too: queue (request parsed
-> its handler starts), handler, reply (handler done -> answer serialized) — so client time minus
these is the sockets, the wake-ups and the client.

    python3 bench/store_read_bench.py --xrayd main=/work/wt/integ/build-rel/xrayd \\
        --xrayd new=build-rel/xrayd --prefill 300000 --rate 20000 --seconds 20 --rounds 2

The load average is printed with every figure: on a shared 2-core machine a p99 under load ~3+ is
mostly other processes. Only 127.0.0.1 is used; everything started is stopped on exit.
"""
import argparse
import http.client
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from store_common import ROOT, Serve, metric, pct  # noqa: E402
import store_bench  # noqa: E402

OPS = ("batch5", "list annotation", "list service", "list all", "graph 1h")
PARTS = ("queue", "handler", "reply")


def load_average():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def prefill(xrayd, work, segments):
    """Fills WORK/seed with `segments` segments; returns (sample trace ids, traces, fill time)."""
    seed_dir = os.path.join(work, "seed")
    now = time.time()
    with Serve(xrayd, work) as serve:
        q = multiprocessing.Queue()
        p = multiprocessing.Process(target=store_bench.sender, args=(serve.udp, 0, segments, 0, 6, now, 1, q,
                                                                     serve.health, 100000))
        p.start()
        traces, ids, _ = q.get()
        p.join()
        serve.drain()
    shutil.rmtree(seed_dir, ignore_errors=True)
    shutil.move(serve.data, seed_dir)
    return ids, traces, now


class Client:
    """One kept-alive HTTP/1.1 connection to the API (reopened if the server closes it)."""

    def __init__(self, api):
        self.host, self.port = api.rsplit(":", 1)
        self.conn = None

    def call(self, path, body):
        data = json.dumps(body).encode()
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, int(self.port), timeout=120)
            try:
                t0 = time.perf_counter()
                self.conn.request("POST", path, data, {"Content-Type": "application/json"})
                r = self.conn.getresponse()
                out = r.read()
                d = time.perf_counter() - t0
                if r.status != 200:
                    raise SystemExit(f"{path}: HTTP {r.status}: {out[:200]!r}")
                return d, json.loads(out), server_timing(r.getheader("Server-Timing"))
            except (ConnectionError, http.client.RemoteDisconnected):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def server_timing(header):
    """{'queue': seconds, ...} from `queue;dur=0.12, handler;dur=0.5` (dur in ms), or {}."""
    out = {}
    for part in (header or "").split(","):
        name, _, rest = part.strip().partition(";")
        if rest.startswith("dur="):
            out[name] = float(rest[4:]) / 1e3
    return out


def requests(ids, traces, now, rng):
    whole = {"StartTime": now - 6 * 3600 - 60, "EndTime": time.time() + 60, "TimeRangeType": "Event"}
    n = rng.randrange(1, traces)
    return {
        "batch5": ("/Traces", {"TraceIds": rng.sample(ids, 5)}),
        "list annotation": ("/TraceSummaries", dict(whole, FilterExpression=f"annotation.request_no = {n}")),
        "list service": ("/TraceSummaries", dict(whole, FilterExpression='service("orders")')),
        "list all": ("/TraceSummaries", whole),
        "graph 1h": ("/ServiceGraph", {"StartTime": time.time() - 3600, "EndTime": time.time()}),
    }


def read_for(client, seconds, pace, ids, traces, now, rng, into):
    """Issues the cycle of OPS, one request every `pace` s, for `seconds`; appends to `into`."""
    t_next = time.perf_counter()
    t_end = t_next + seconds
    k = 0
    while time.perf_counter() < t_end:
        op = OPS[k % len(OPS)]
        k += 1
        path, body = requests(ids, traces, now, rng)[op]
        d, _, parts = client.call(path, body)
        into.setdefault(op, []).append(d)
        for name, v in parts.items():
            into.setdefault(f"{op} {name}", []).append(v)
        t_next = max(t_next + pace, time.perf_counter())
        time.sleep(max(0.0, t_next - time.perf_counter()))


def busy_loop(api, now, stop):
    c = Client(api)
    body = {"StartTime": now - 6 * 3600 - 60, "EndTime": now + 60, "TimeRangeType": "Event"}
    while not stop.is_set():
        c.call("/TraceSummaries", body)


def busy_clients(api, n, now, stop):
    """`n` processes (not threads: the measured client must not wait for their GIL) issuing
    unfiltered whole-range listings back to back (other Grafana panels): they hold reader
    connections and handler slots while the measured client reads."""
    procs = [multiprocessing.Process(target=busy_loop, args=(api, now, stop), daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    return procs


def run(xrayd, args, work, ids, traces, now, rng, results, name):
    data = os.path.join(work, "data")
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(os.path.join(work, "seed"), data)
    os.environ["XRAYD_SERVER_TIMING"] = "1"
    with Serve(xrayd, work, keep_data=True) as serve:
        client = Client(serve.api)
        stop = multiprocessing.Event()
        others = busy_clients(serve.api, args.busy, now, stop)
        read_for(client, 1.0, args.pace, ids, traces, now, rng, {})  # warm: connection, reader pool
        idle = results.setdefault((name, "idle"), {"load": []})
        idle["load"].append(load_average())
        read_for(client, args.seconds, args.pace, ids, traces, now, rng, idle)
        stored0 = metric(serve.health, "xrayd_segments_sent_total")
        received0 = metric(serve.health, "xrayd_segments_received_total")
        gen = subprocess.Popen([args.loadgen, "--target", f"127.0.0.1:{serve.udp}", "--rate", str(args.rate),
                                "--duration", str(args.seconds + 2), "--seed", str(rng.randrange(1 << 30))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # ingest under way
        busy = results.setdefault((name, "ingest"), {"load": [], "stored": [], "received": []})
        t0 = time.perf_counter()
        read_for(client, args.seconds, args.pace, ids, traces, now, rng, busy)
        span = time.perf_counter() - t0 + 1.0
        busy["stored"].append((metric(serve.health, "xrayd_segments_sent_total") - stored0) / span)
        busy["received"].append((metric(serve.health, "xrayd_segments_received_total") - received0) / span)
        busy["load"].append(load_average())
        gen.wait()
        stop.set()
        for t in others:
            t.join()


def fmt_ms(values):
    return f"{pct(values, 50) * 1e3:6.2f} {pct(values, 99) * 1e3:6.2f} {max(values) * 1e3:7.2f}"


def report(results, bins):
    base = bins[0][0]
    for phase in ("idle", "ingest"):
        for name, _ in bins:
            r = results[(name, phase)]
            head = f"== {name} {phase}: load {', '.join(f'{x:.1f}' for x in r['load'])}"
            if "stored" in r:
                head += (f"; received {sum(r['received']) / len(r['received']):.0f}, stored "
                         f"{sum(r['stored']) / len(r['stored']):.0f} seg/s during the reads")
            print(head)
            print(f"   {'operation':18} {'p50':>6} {'p99':>6} {'max':>7}  (ms)  n")
            for op in OPS:
                v = r[op]
                line = f"   {op:18} {fmt_ms(v)}  {len(v):4d}"
                if name != base:
                    b = results[(base, phase)][op]
                    line += f"   vs {base}: p50 x{pct(v, 50) / pct(b, 50):.2f} p99 x{pct(v, 99) / pct(b, 99):.2f}"
                parts = [f"{p} {pct(r[f'{op} {p}'], 50) * 1e3:.2f}/{pct(r[f'{op} {p}'], 99) * 1e3:.2f}"
                         for p in PARTS if f"{op} {p}" in r]
                if parts:
                    line += "   server p50/p99: " + ", ".join(parts)
                print(line)
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xrayd", action="append", required=True, help="NAME=PATH, first is the baseline")
    ap.add_argument("--loadgen", default=os.path.join(ROOT, "build", "bench", "xray_loadgen"))
    ap.add_argument("--prefill", type=int, default=300000, help="segments in the store before the reads")
    ap.add_argument("--rate", type=int, default=20000, help="segments/s offered during the ingest phase")
    ap.add_argument("--seconds", type=float, default=20, help="per phase")
    ap.add_argument("--pace", type=float, default=0.02, help="seconds between the starts of two reads")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--busy", type=int, default=0,
                    help="clients listing the whole range back to back beside the measured one (other panels)")
    ap.add_argument("--workdir", help="keep the store here (default: a temporary directory, removed)")
    args = ap.parse_args()
    bins = [x.split("=", 1) for x in args.xrayd]
    work = args.workdir or tempfile.mkdtemp(prefix="xrayd-read-bench-")
    os.makedirs(work, exist_ok=True)
    rng = random.Random(7)
    results = {}
    try:
        t0 = time.time()
        ids, traces, now = prefill(bins[0][1], work, args.prefill)
        print(f"prefill: {args.prefill} segments ({traces} traces) in {time.time() - t0:.0f} s", flush=True)
        for rnd in range(args.rounds):
            for name, path in bins:
                run(path, args, work, ids, traces, now, rng, results, name)
                print(f"round {rnd + 1}: {name} done (load {load_average():.1f})", flush=True)
        report(results, bins)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
