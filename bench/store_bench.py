#!/usr/bin/env python3
"""Benchmarks `xrayd serve`'s store (issue 5): ingest rate into SQLite, bytes on disk per segment,
and GetTraceSummaries / BatchGetTraces latency (p50/p99) over the filled store.

    cmake --build build --target xrayd xray_loadgen
    python3 bench/store_bench.py --segments 1000000 --rate 40000

Only 127.0.0.1 is used. Everything started is killed on exit. Not a test.
"""
import argparse
import json
import os
import random
import subprocess
import tempfile
import time

from store_common import ROOT, Serve, call, metric, pct


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--xrayd", default=os.path.join(ROOT, "build", "xrayd"))
    ap.add_argument("--loadgen", default=os.path.join(ROOT, "build", "bench", "xray_loadgen"))
    ap.add_argument("--segments", type=int, default=1000000)
    ap.add_argument("--rate", type=int, default=40000)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--workdir")
    args = ap.parse_args()

    work = args.workdir or tempfile.mkdtemp(prefix="xrayd-store-bench-")
    os.makedirs(work, exist_ok=True)
    with Serve(args.xrayd, work) as serve:
        udp, api, health = serve.udp, serve.api.split(":")[1], serve.health.split(":")[1]
        t0 = time.time()
        gen = subprocess.run([args.loadgen, "--target", f"127.0.0.1:{udp}", "--rate", str(args.rate), "--count",
                              str(args.segments)], capture_output=True, text=True, check=True)
        sent = json.loads(gen.stdout.strip().splitlines()[-1])["sent"]
        h = serve.health
        serve.drain()
        received = metric(h, "xrayd_segments_received_total")
        spilled = metric(h, "xrayd_segments_spilled_total")
        elapsed = time.time() - t0
        stored = metric(h, "xrayd_segments_sent_total")
        kernel_drops = metric(h, "xrayd_udp_kernel_drops_total")
        size = serve.disk_bytes()
        print(f"sent {sent}, received {received:.0f}, stored {stored:.0f}, spilled {spilled:.0f}, kernel drops {kernel_drops:.0f}")
        print(f"ingest: {stored / elapsed:.0f} segments/s stored over {elapsed:.1f} s (offered {args.rate}/s)")
        print(f"disk: {size / 1e6:.1f} MB, {size / max(stored, 1):.0f} bytes per segment")

        now = time.time()
        lat, ids = [], []
        for _ in range(args.queries):
            start = random.uniform(t0 - 5, now - 60)
            d, out = call(f"127.0.0.1:{api}", "/TraceSummaries", {"StartTime": start, "EndTime": start + 60,
                                                                   "TimeRangeType": "Event"})
            lat.append(d)
            ids += [t["Id"] for t in out["TraceSummaries"][:5]]
        print(f"GetTraceSummaries (60 s window, first page): p50 {pct(lat, 50) * 1000:.1f} ms, p99 {pct(lat, 99) * 1000:.1f} ms")
        flat = []
        for _ in range(args.queries):
            d, out = call(f"127.0.0.1:{api}", "/TraceSummaries", {"StartTime": t0 - 5, "EndTime": now,
                                                                   "TimeRangeType": "Event",
                                                                   "FilterExpression": "http.status = 503 AND annotation.customer_tier = \"gold\""})
            flat.append(d)
        print(f"GetTraceSummaries (whole range, filter, first page): p50 {pct(flat, 50) * 1000:.1f} ms, p99 {pct(flat, 99) * 1000:.1f} ms")
        lat = []
        for _ in range(args.queries):
            batch = random.sample(ids, min(5, len(ids)))
            d, out = call(f"127.0.0.1:{api}", "/Traces", {"TraceIds": batch})
            lat.append(d)
        print(f"BatchGetTraces (5 ids): p50 {pct(lat, 50) * 1000:.1f} ms, p99 {pct(lat, 99) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
