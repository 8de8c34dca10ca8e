#!/usr/bin/env python3
"""Benchmarks `xrayd serve`'s store (issue 14) with realistic multi-service traces, for one or more
xrayd binaries in the same run (the first is the baseline every ratio is against), and beside them
moto's X-Ray server on the operations it supports.

Load: traces of 3-4 segments (web on EC2 -> api on ECS -> orders, with remote and DynamoDB calls
as subsegments, errors/faults/throttles, annotations, ~1.25 KB each), start times spread over the
last --hours hours, sent as UDP datagrams at --rate segments/s. Reported per binary: ingest rate
(stored / wall time until drained) and per server-CPU-second, disk per segment, GetTraceSummaries
p50/p99 (60 s window; whole range with a selective annotation filter; whole range unfiltered),
BatchGetTraces (5 ids), GetServiceGraph and GetTimeSeriesServiceStatistics over 1 h and 6 h
(with the web node's count, to see whether the answer covers the window).

    cmake --build build --target xrayd
    python3 bench/store_bench.py --xrayd main=OLD/xrayd --xrayd new=build/xrayd --segments 1000000

Only 127.0.0.1 is used. Everything started is killed on exit. Not a test.
"""
import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time

from store_common import ROOT, Serve, call, metric, pct

HEADER = b'{"format": "json", "version": 1}\n'


def hexid(rng):
    return "%016x" % rng.getrandbits(64)


def trace_docs(rng, n, now, hours):
    """The documents of trace n: web -> api -> orders (sometimes), each ~1.25 KB."""
    t = now - rng.random() * hours * 3600
    tid = "1-%08x-%024x" % (int(t), rng.getrandbits(96))
    fault, error, throttle = rng.random() < 0.02, rng.random() < 0.05, rng.random() < 0.01
    tier = rng.choice(["gold", "silver", "bronze"])
    web_id, call_api, api_id, call_orders = hexid(rng), hexid(rng), hexid(rng), hexid(rng)
    pad = "x" * 260
    web = {"trace_id": tid, "id": web_id, "name": "web-frontend", "origin": "AWS::EC2::Instance", "start_time": t,
           "end_time": t + 0.120, "fault": fault,
           "http": {"request": {"method": "GET", "url": f"https://shop.example.com/product/{n % 5000}",
                                "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/118.0",
                                "client_ip": f"203.0.113.{n % 250}"}, "response": {"status": 500 if fault else 200}},
           "aws": {"ec2": {"instance_id": "i-0abc%08d" % (n % 64), "availability_zone": "eu-west-1a"},
                   "xray": {"sdk": "X-Ray for Python", "sdk_version": "2.15.0"}},
           "annotations": {"customer_tier": tier, "request_no": n}, "metadata": {"debug": {"pad": pad}},
           "subsegments": [{"id": call_api, "name": "catalog-api", "namespace": "remote", "start_time": t + 0.005,
                            "end_time": t + 0.110, "fault": fault,
                            "http": {"request": {"method": "GET", "url": f"http://catalog-api/items/{n % 5000}"},
                                     "response": {"status": 500 if fault else 200}}}]}
    api = {"trace_id": tid, "id": api_id, "parent_id": call_api, "name": "catalog-api", "origin": "AWS::ECS::Container",
           "start_time": t + 0.01, "end_time": t + 0.105, "fault": fault, "error": error,
           "http": {"request": {"method": "GET", "url": f"http://catalog-api/items/{n % 5000}"},
                    "response": {"status": 500 if fault else (404 if error else 200)}},
           "aws": {"ecs": {"container": "catalog-7f9c", "container_id": "0123456789ab"}},
           "annotations": {"customer_tier": tier}, "metadata": {"debug": {"pad": pad[:200]}},
           "subsegments": [
               {"id": hexid(rng), "name": "DynamoDB", "namespace": "aws", "start_time": t + 0.02, "end_time": t + 0.035,
                "throttle": throttle, "error": throttle,
                "aws": {"operation": "GetItem", "table_name": "products", "region": "eu-west-1", "retries": 0}},
               {"id": hexid(rng), "name": "pricing.internal", "namespace": "remote", "start_time": t + 0.04,
                "end_time": t + 0.06, "http": {"request": {"method": "GET", "url": "http://pricing.internal/p"},
                                               "response": {"status": 200}}},
               {"id": call_orders, "name": "orders", "namespace": "remote", "start_time": t + 0.065,
                "end_time": t + 0.1}]}
    docs = [web, api]
    if n % 2 == 0:
        docs.append({"trace_id": tid, "id": hexid(rng), "parent_id": call_orders, "name": "orders",
                     "origin": "AWS::ECS::Container", "start_time": t + 0.07, "end_time": t + 0.098,
                     "http": {"request": {"method": "POST", "url": "http://orders/reserve"}, "response": {"status": 200}},
                     "annotations": {"customer_tier": tier}, "metadata": {"debug": {"pad": pad}},
                     "subsegments": [{"id": hexid(rng), "name": "orders-db", "namespace": "remote",
                                      "start_time": t + 0.075, "end_time": t + 0.09,
                                      "sql": {"url": "postgresql://orders-db:5432/orders", "database_type": "PostgreSQL",
                                              "sanitized_query": "SELECT * FROM reservations WHERE id = ?"}}]})
    return tid, [json.dumps(d, separators=(",", ":")) for d in docs]


def generate(segments, hours, seed=1):
    rng = random.Random(seed)
    now = time.time()
    out, ids, n = [], [], 0
    while len(out) < segments:
        tid, docs = trace_docs(rng, n, now, hours)
        ids.append(tid)
        out += docs
        n += 1
    return out[:segments], ids, now


def send_udp(port, docs, rate):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    t0 = time.perf_counter()
    chunk = max(1, rate // 200)
    for i in range(0, len(docs), chunk):
        for d in docs[i:i + chunk]:
            s.sendto(HEADER + d.encode(), ("127.0.0.1", port))
        ahead = (i + chunk) / rate - (time.perf_counter() - t0)
        if ahead > 0:
            time.sleep(ahead)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(fn, n):
    lat = []
    for _ in range(n):
        d, out = fn()
        lat.append(d)
    return lat, out


def web_count(graph):
    for s in graph.get("Services", []):
        if s["Name"] == "web-frontend":
            return s["SummaryStatistics"]["TotalCount"]
    return 0


def measure(name, xrayd, docs, ids, now, args, work):
    r = {}
    with Serve(xrayd, work) as serve:
        cpu0, t0 = cpu_seconds(serve.proc.pid), time.time()
        send_udp(serve.udp, docs, args.rate)
        serve.drain(stall_seconds=120)
        elapsed, cpu = time.time() - t0, cpu_seconds(serve.proc.pid) - cpu0
        stored = metric(serve.health, "xrayd_segments_sent_total")
        r["stored"] = stored
        r["lost"] = len(docs) - stored
        r["ingest/s"] = stored / elapsed
        r["ingest/cpu-s"] = stored / max(cpu, 1e-9)
        r["bytes/seg"] = serve.disk_bytes() / max(stored, 1)
        api, q = serve.api, args.queries
        rng = random.Random(2)

        def listing(body):
            return lambda: call(api, "/TraceSummaries", dict(body, TimeRangeType="Event"))

        def window():
            s = now - rng.random() * args.hours * 3600
            return call(api, "/TraceSummaries", {"StartTime": s - 60, "EndTime": s, "TimeRangeType": "Event"})
        r["list 60s"], _ = timed(window, q)
        whole = {"StartTime": now - args.hours * 3600 - 60, "EndTime": now + 60}
        r["list filtered"], _ = timed(listing(dict(whole, FilterExpression='annotation.request_no = 4242')), q)
        r["list all"], _ = timed(listing(whole), q)
        r["batch5"], _ = timed(lambda: call(api, "/Traces", {"TraceIds": rng.sample(ids, 5)}), q)
        for hours in (1, 6):
            span = {"StartTime": now - hours * 3600, "EndTime": now}
            r[f"graph {hours}h"], g = timed(lambda: call(api, "/ServiceGraph", span), max(3, q // 10))
            r[f"graph {hours}h web"] = web_count(g)
            r[f"series {hours}h"], _ = timed(
                lambda: call(api, "/TimeSeriesServiceStatistics", dict(span, Period=60)), max(3, q // 10))
    return r


def measure_moto(docs, args):
    """moto's X-Ray server (PutTraceSegments, GetTraceSummaries, BatchGetTraces) on the first --moto-segments."""
    import boto3
    from store_common import free_port
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        client = boto3.client("xray", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="x")
        for _ in range(200):
            try:
                client.get_sampling_rules()
                break
            except Exception:
                time.sleep(0.1)
        part = docs[:args.moto_segments]
        cpu0, t0 = cpu_seconds(proc.pid), time.time()
        for i in range(0, len(part), 50):
            client.put_trace_segments(TraceSegmentDocuments=part[i:i + 50])
        elapsed, cpu = time.time() - t0, cpu_seconds(proc.pid) - cpu0
        lat = []
        now = time.time()
        for _ in range(min(args.queries, 20)):
            t = time.perf_counter()
            client.get_trace_summaries(StartTime=now - args.hours * 3600 - 60, EndTime=now + 60)
            lat.append(time.perf_counter() - t)
        return {"stored": len(part), "ingest/s": len(part) / elapsed, "ingest/cpu-s": len(part) / max(cpu, 1e-9),
                "list all": lat}
    finally:
        proc.kill()


def report(results, base):
    b = results[base]
    for name, r in results.items():
        parts = []
        for k, v in r.items():
            if isinstance(v, list):
                s = f"{k} p50 {pct(v, 50) * 1e3:.1f} ms p99 {pct(v, 99) * 1e3:.1f} ms"
                if name != base and k in b:
                    s += f" (x{pct(v, 50) / pct(b[k], 50):.2f}/x{pct(v, 99) / pct(b[k], 99):.2f})"
            else:
                s = f"{k} {v:.0f}"
                if name != base and k in b and isinstance(b[k], (int, float)) and b[k]:
                    s += f" (x{v / b[k]:.2f})"
            parts.append(s)
        print(f"{name}: " + "; ".join(parts), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--xrayd", action="append", help="NAME=PATH; the first is the baseline")
    ap.add_argument("--segments", type=int, default=1000000)
    ap.add_argument("--rate", type=int, default=40000, help="segments/s offered over UDP")
    ap.add_argument("--hours", type=float, default=6, help="trace start times spread over the last HOURS")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--moto-segments", type=int, default=0, help="also run moto's server on this many segments")
    ap.add_argument("--workdir")
    args = ap.parse_args()
    bins = [x.split("=", 1) for x in (args.xrayd or [f"xrayd={os.path.join(ROOT, 'build', 'xrayd')}"])]
    docs, ids, now = generate(args.segments, args.hours)
    size = sum(len(d) for d in docs) / len(docs)
    print(f"{len(docs)} segments in {len(ids)} traces, {size:.0f} bytes each on average", flush=True)
    work = args.workdir or tempfile.mkdtemp(prefix="xrayd-store-bench-")
    results = {}
    for name, path in bins:
        results[name] = measure(name, path, docs, ids, now, args, work)
        report({name: results[name]}, name)
    if args.moto_segments:
        results["moto"] = measure_moto(docs, args)
    print("--- ratios against", bins[0][0])
    report(results, bins[0][0])


if __name__ == "__main__":
    main()
