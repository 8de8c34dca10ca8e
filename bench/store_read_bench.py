#!/usr/bin/env python3
"""API read latency while `xrayd serve` ingests at a high rate (issue 14: readers never wait for the
writer). For each xrayd binary given (e.g. before and after a change, measured in the same run,
alternating rounds): start `serve`, pre-fill the store, then keep xray_loadgen sending at --rate
while one client measures GetTraceSummaries (first page of the last 60 s) and BatchGetTraces
(5 ids) back to back. Prints p50/p99 per binary and the ratios against the first.

    python3 bench/store_read_bench.py --xrayd before=BUILD_A/xrayd --xrayd after=BUILD_B/xrayd

Only 127.0.0.1 is used. Everything started is killed on exit. Not a test.
"""
import argparse
import os
import random
import shutil
import subprocess
import tempfile
import time

from store_common import ROOT, Serve, call, metric, pct


def measure(xrayd, loadgen, work, args):
    with Serve(xrayd, work) as serve:
        udp, api, health = serve.udp, serve.api, serve.health
        subprocess.run([loadgen, "--target", f"127.0.0.1:{udp}", "--rate", str(args.rate), "--count", str(args.prefill),
                        "--seed", "1"], capture_output=True, check=True)
        serve.drain()
        stored0 = metric(health, "xrayd_segments_sent_total")
        gen = subprocess.Popen([loadgen, "--target", f"127.0.0.1:{udp}", "--rate", str(args.rate), "--duration",
                                str(args.seconds + 2), "--seq-start", str(args.prefill), "--seed", "2"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)  # ingest running
        t_end = time.time() + args.seconds
        listing, batch, ids = [], [], []
        while time.time() < t_end:
            now = time.time()
            d, out = call(api, "/TraceSummaries", {"StartTime": now - 60, "EndTime": now, "TimeRangeType": "Event"})
            listing.append(d)
            ids = [t["Id"] for t in out["TraceSummaries"][:50]] or ids
            if ids:
                d, _ = call(api, "/Traces", {"TraceIds": random.sample(ids, min(5, len(ids)))})
                batch.append(d)
        stored = metric(health, "xrayd_segments_sent_total") - stored0
        gen.wait()
        return listing, batch, stored / args.seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--xrayd", action="append", required=True, help="NAME=PATH, first is the baseline")
    ap.add_argument("--loadgen", default=os.path.join(ROOT, "build", "bench", "xray_loadgen"))
    ap.add_argument("--prefill", type=int, default=100000)
    ap.add_argument("--rate", type=int, default=30000, help="segments/s offered during the reads")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    bins = [x.split("=", 1) for x in args.xrayd]
    results = {name: ([], [], []) for name, _ in bins}
    work = tempfile.mkdtemp(prefix="xrayd-read-bench-")
    try:
        for _ in range(args.rounds):
            for name, path in bins:
                listing, batch, rate = measure(path, args.loadgen, work, args)
                results[name][0].extend(listing)
                results[name][1].extend(batch)
                results[name][2].append(rate)
        base = bins[0][0]
        for name, _ in bins:
            listing, batch, rates = results[name]
            line = (f"{name}: stored {sum(rates) / len(rates):.0f} seg/s during reads; "
                    f"GetTraceSummaries p50 {pct(listing, 50) * 1e3:.1f} ms p99 {pct(listing, 99) * 1e3:.1f} ms "
                    f"(n={len(listing)}); BatchGetTraces(5) p50 {pct(batch, 50) * 1e3:.1f} ms "
                    f"p99 {pct(batch, 99) * 1e3:.1f} ms (n={len(batch)})")
            if name != base:
                bl, bb, _ = results[base]
                line += (f"; vs {base}: listing p50 x{pct(listing, 50) / pct(bl, 50):.2f} p99 "
                         f"x{pct(listing, 99) / pct(bl, 99):.2f}, batch p50 x{pct(batch, 50) / pct(bb, 50):.2f} "
                         f"p99 x{pct(batch, 99) / pct(bb, 99):.2f}")
            print(line, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
