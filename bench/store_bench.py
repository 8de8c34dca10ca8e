#!/usr/bin/env python3
"""Benchmarks `xrayd serve`'s store (issue 14) as it grows — e.g. 1M, 3M and 10M segments — with
realistic multi-service traces, and beside it moto's X-Ray server on the operations it supports.

Load: traces of 2-3 segments (web on EC2 -> catalog-api on ECS -> orders on ECS, with remote,
DynamoDB and SQL calls as subsegments, errors/faults/throttles, annotations, ~1.25 KB each). For
each size, Python writes the new documents once to WORKDIR/docs-SIZE.jsonl.zst (one per line,
through the zstd tool when there is one: ~20x smaller, so 10M take ~0.6 GB; ~80k documents/s,
not timed; deleted after unless --keep-docs), then bench/xray_replay (C++) streams
the file to xrayd at --rate segments/s: as UDP datagrams (--via udp, the daemon's framing) or as
PutTraceSegments requests of 50 documents to the API port over --connections keep-alive
connections (--via put), or as UDP datagrams into a second xrayd in daemon mode that forwards them
to the serve (--endpoint; --via daemon: what a fleet's daemons send, batched and with the daemon's
own concurrency; reported also: its losses, its requests' mean latency and stored segments per
CPU-second of the daemon). One server, one store: each size adds segments to what the previous
sizes stored, then measures.

Trace times (--arrival). A virtual clock moves through trace time as the load is sent: trace n
starts at t0 + (segments before it) / density, plus up to 2 s of jitter, with the density fixed for
the store's life (--hours: hours of trace time per million segments, default 6, i.e. ~46 segments
per second of trace time). So, as with live traffic, segments arrive within seconds of their start
and the time-keyed indexes take appends ("ordered", the default). Every size continues the clock
(and a --reuse growth continues the clock of state.json), so the store spans 6 h at 1M, 18 h at 3M
and 60 h at 10M, and the 1 h and 6 h graph/statistics windows (the newest hour and six hours) hold
the same amount of traffic at every size (~167k and 1M segments once the store spans them): their
cost's growth is the store's growth, not a denser window. Listings run over the whole range the
store holds. t0 is set so that 10M segments (or the largest size) still end in the past, within
xrayd's default retention of 168 h. "random" keeps the old behaviour: each size's traces start at
uniformly random times over that size's stretch of the clock (the same times on average, arrival
order shuffled), so every time-keyed index takes random inserts.

Reported per size: ingest rate (stored / wall time from the first send until drained) and per
server-CPU-second, the offered rate the replayer achieved, segments lost, where they went (xrayd's
rejected / kernel-drop / exporter-dropped / failed / spilled counters; for --via put also
UnprocessedTraceSegments, documents in non-2xx answers by status, failed requests and the request
latency), the store's rate in each 10 s of sending, disk per segment (database + WAL),
GetTraceSummaries p50/p99 (a 60 s window; the whole range with each selective filter, and the same
filter forced through the time-ordered scan — `(F) OR false` has no index condition — as the in-run
baseline; the whole range unfiltered), BatchGetTraces (5 ids), GetServiceGraph and
GetTimeSeriesServiceStatistics over 1 h and 6 h (with the web node's count, to see that the answer
covers the window).

moto (--moto-segments N, in this machine's Python): a fresh moto server gets the first N segments
by PutTraceSegments (batches of 50, boto3); reported: ingest per server-CPU-second and the
whole-range listing's latency, against xrayd's figures measured at the same N (the first size is N
then) — a baseline from the same run.

    cmake --build build --target xrayd xray_replay
    python3 bench/store_bench.py --sizes 1000000,3000000,10000000 --moto-segments 50000

After a run, `--reuse --workdir DIR` measures the queries again on the store (and state.json) it left
in DIR, e.g. with another binary (`--xrayd`), so two builds compare on the same data; with --sizes
above what the store holds it grows the store to them instead (an interrupted run resumes from the
last size it finished). `--rate 0 --window 100000` ingests as fast as the store takes segments (the
sender stays at most 100,000 segments ahead of what is stored); over UDP add a rate the receiver
takes (e.g. --rate 60000): unpaced, xray_replay overruns the UDP socket (counted as kernel drops).
Disk: the document file of a size step is ~60 bytes per new segment with zstd (~1.3 KB without),
beside the store (~0.5 KB per segment).

Only 127.0.0.1 is used. Everything started is killed on exit. Not a test.
"""
import argparse
import atexit
import json
import operator
import os
import re
import shutil
import random
import subprocess
import sys
import tempfile
import time

from store_common import ROOT, Serve, call, free_port, metric, pct

PAD = "x" * 260

# The documents of one trace, as templates (%-formatting is ~10x faster than json.dumps).
WEB = ('{"trace_id":"%(tid)s","id":"%(web)s","name":"web-frontend","origin":"AWS::EC2::Instance",'
       '"start_time":%(t)s,"end_time":%(t120)s,"fault":%(fault)s,"http":{"request":{"method":"GET",'
       '"url":"https://shop.example.com/product/%(item)d","user_agent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/118.0",'
       '"client_ip":"203.0.113.%(ip)d"},"response":{"status":%(status)d}},"aws":{"ec2":{"instance_id":"i-0abc%(inst)08d",'
       '"availability_zone":"eu-west-1a"},"xray":{"sdk":"X-Ray for Python","sdk_version":"2.15.0"}},'
       '"annotations":{"customer_tier":"%(tier)s","request_no":%(n)d},"metadata":{"debug":{"pad":"' + PAD + '"}},'
       '"subsegments":[{"id":"%(call_api)s","name":"catalog-api","namespace":"remote","start_time":%(t5)s,'
       '"end_time":%(t110)s,"fault":%(fault)s,"http":{"request":{"method":"GET",'
       '"url":"http://catalog-api/items/%(item)d"},"response":{"status":%(status)d}}}]}')
API = ('{"trace_id":"%(tid)s","id":"%(api)s","parent_id":"%(call_api)s","name":"catalog-api",'
       '"origin":"AWS::ECS::Container","start_time":%(t10)s,"end_time":%(t105)s,"fault":%(fault)s,'
       '"error":%(error)s,"http":{"request":{"method":"GET","url":"http://catalog-api/items/%(item)d"},'
       '"response":{"status":%(api_status)d}},"aws":{"ecs":{"container":"catalog-7f9c","container_id":"0123456789ab"}},'
       '"annotations":{"customer_tier":"%(tier)s"},"metadata":{"debug":{"pad":"' + PAD[:200] + '"}},'
       '"subsegments":[{"id":"%(ddb)s","name":"DynamoDB","namespace":"aws","start_time":%(t20)s,'
       '"end_time":%(t35)s,"throttle":%(throttle)s,"error":%(throttle)s,"aws":{"operation":"GetItem",'
       '"table_name":"products","region":"eu-west-1","retries":0}},{"id":"%(pricing)s","name":"pricing.internal",'
       '"namespace":"remote","start_time":%(t40)s,"end_time":%(t60)s,"http":{"request":{"method":"GET",'
       '"url":"http://pricing.internal/p"},"response":{"status":200}}},{"id":"%(call_orders)s","name":"orders",'
       '"namespace":"remote","start_time":%(t65)s,"end_time":%(t100)s,"fault":%(ofault)s}]}')
ORDERS = ('{"trace_id":"%(tid)s","id":"%(orders)s","parent_id":"%(call_orders)s","name":"orders",'
          '"origin":"AWS::ECS::Container","start_time":%(t70)s,"end_time":%(t98)s,"fault":%(ofault)s,'
          '"http":{"request":{"method":"POST","url":"http://orders/reserve"},"response":{"status":%(ostatus)d}},'
          '"annotations":{"customer_tier":"%(tier)s"},"metadata":{"debug":{"pad":"' + PAD + '"}},'
          '"subsegments":[{"id":"%(odb)s","name":"orders-db","namespace":"remote","start_time":%(t75)s,'
          '"end_time":%(t90)s,"sql":{"url":"postgresql://orders-db:5432/orders","database_type":"PostgreSQL",'
          '"sanitized_query":"SELECT * FROM reservations WHERE id = ?"}}]}')
TIERS = ("gold", "silver", "bronze")
BOOL = ("false", "true")
# Times are written as "<seconds>.<micros>" from integers: the start's microseconds stay below
# 880000, so no offset below carries into the seconds.
OFFSETS = {"t": 0, "t5": 5000, "t10": 10000, "t20": 20000, "t35": 35000, "t40": 40000, "t60": 60000, "t65": 65000,
           "t70": 70000, "t75": 75000, "t90": 90000, "t98": 98000, "t100": 100000, "t105": 105000, "t110": 110000,
           "t120": 120000}


def positional(template):
    """A %(name)X template as a positional one and the getter of its values from a dict."""
    names = []

    def one(m):
        names.append(m.group(1))
        return "%" + m.group(2)
    text = re.sub(r"%\((\w+)\)([-\d.]*[sdf])", one, template)
    return text, operator.itemgetter(*names)


TEMPLATES = [positional(t) for t in (WEB, API, ORDERS)]


def trace_docs(rng, n, start, seed):
    """Trace n's documents (web, api, and orders for even n): ~1.25 KB each, starting in the second
    int(start) (the microseconds are drawn)."""
    seconds = int(start)
    micros = rng.randrange(0, 880000)
    r = rng.getrandbits(64)
    fault, error, throttle, ofault = r % 50 == 0, (r >> 8) % 20 == 0, (r >> 16) % 100 == 0, (r >> 24) % 50 == 0
    h = "%015x" % (r & 0xfffffffffffffff)
    whole = "%d." % seconds
    v = {k: whole + "%06d" % (micros + o) for k, o in OFFSETS.items()}
    v.update({"tid": "1-%08x-%08x%016x" % (seconds, seed, n), "web": "a" + h, "call_api": "b" + h, "api": "c" + h,
              "ddb": "d" + h, "pricing": "e" + h, "call_orders": "f" + h, "orders": "1" + h, "odb": "2" + h,
              "fault": BOOL[fault], "error": BOOL[error], "throttle": BOOL[throttle], "ofault": BOOL[ofault],
              "item": n % 5000, "ip": n % 250, "inst": n % 64, "status": 500 if fault else 200,
              "api_status": 500 if fault else (404 if error else 200), "ostatus": 500 if ofault else 200,
              "tier": TIERS[n % 3], "n": request_no(n)})
    (web, web_of), (api, api_of), (orders, orders_of) = TEMPLATES
    docs = [web % web_of(v), api % api_of(v)]
    if n % 2 == 0:
        docs.append(orders % orders_of(v))
    return v["tid"], docs


def segments_before(n):
    """Segments of traces 0..n-1 (even traces have 3, odd ones 2)."""
    return (n // 2) * 5 + (3 if n % 2 else 0)


def traces_for(segments):
    """The fewest traces whose documents number at least `segments`."""
    n = (segments // 5) * 2
    while segments_before(n) < segments:
        n += 1
    return n


class Clock:
    """Trace time as a function of how far the load has gone: trace n starts at
    t0 + segments_before(n) / density (segments per second of trace time), plus up to JITTER s — a
    busy service whose segments reach the daemon within seconds of their start. A run continues
    the clock of the store it grows (state.json), so every size adds the newest traces."""
    JITTER = 2.0

    def __init__(self, t0, density):
        self.t0, self.density = t0, density

    def at(self, segments):
        return self.t0 + segments / self.density

    def end(self, traces):
        """The latest start time traces 0..traces-1 can have."""
        return self.at(segments_before(traces)) + self.JITTER


def write_docs(path, clock, arrival, first_trace, segments, seed):
    """Writes `segments` documents of traces first_trace.. to `path`, one per line, in arrival order;
    returns (the next trace, sampled trace ids). "ordered": each trace at its clock time (so the file
    is in time order, give or take the jitter); "random": at a uniformly random time over the same
    stretch of the clock (the old behaviour: every time-keyed index takes random inserts)."""
    rng = random.Random(seed * 1000003 + first_trace)
    lo, hi = clock.at(segments_before(first_trace)), clock.at(segments_before(first_trace) + segments)
    written, n, sample = 0, first_trace, []
    with open(path, "wb", buffering=1 << 22) as raw:
        # A .zst path goes through the zstd tool (-1: ~20x smaller, faster than the generator).
        zstd = subprocess.Popen(["zstd", "-q", "-1", "-T1", "-c"], stdin=subprocess.PIPE, stdout=raw) \
            if path.endswith(".zst") else None
        f = zstd.stdin if zstd else raw
        while written < segments:
            if arrival == "ordered":
                start = clock.at(segments_before(n)) + rng.random() * Clock.JITTER
            else:
                start = lo + rng.random() * (hi - lo)
            tid, docs = trace_docs(rng, n, start, seed)
            if n % 97 == 0:
                sample.append(tid)
            docs = docs[:segments - written]
            f.write(("\n".join(docs) + "\n").encode())
            written += len(docs)
            n += 1
        if zstd:
            zstd.stdin.close()
            if zstd.wait() != 0:
                raise SystemExit(f"zstd failed writing {path}")
    return n, sample


class Sampler:
    """The store's count (xrayd_segments_sent_total) every 10 s from the first send until drained."""

    def __init__(self, serve, stored_before):
        self.serve, self.t0, self.samples = serve, time.time(), [(0.0, stored_before)]

    def due(self):
        return 10.0 - (time.time() - self.t0) % 10.0

    def tick(self):
        if time.time() - self.t0 >= len(self.samples) * 10.0:
            self.samples.append((time.time() - self.t0, metric(self.serve.health, "xrayd_segments_sent_total")))


class Forwarder(Serve):
    """--via daemon: xrayd in daemon mode (UDP in, PutTraceSegments out) with --endpoint at the serve's
    API, as a fleet's daemons would send to one `xrayd serve`: its own exporter's batching (50
    documents a request) and concurrency (the AWS daemon's Concurrency, 8). Dummy static
    credentials: the serve checks no signature on a loopback API."""

    def __init__(self, xrayd, work, api, extra=(), memory_mb=512):
        self.udp, health = free_port(), free_port()
        while health == self.udp:
            health = free_port()
        self.health, self.data = f"127.0.0.1:{health}", None
        env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y", AWS_REGION="us-east-1")
        log = open(os.path.join(work, "daemon.log"), "a")
        self.proc = subprocess.Popen([xrayd, "-o", "--endpoint", f"http://{api}", "-b", f"127.0.0.1:{self.udp}",
                                      "-t", f"127.0.0.1:{self.udp}", "--health-address", self.health,
                                      "-m", str(memory_mb), "-l", "warn", *extra],
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        self.wait_until_up(f"{xrayd} (daemon mode) exited: see {work}/daemon.log")


def replay(args, serve, path, log, sampler):
    """Sends the file with xray_replay over --via; returns its summary (JSON)."""
    if args.via == "put":
        target = ["--put", serve.api, "--connections", str(args.connections), "--retries", str(args.retries),
                  "--batch", str(args.batch)]
    else:  # udp: into the serve; daemon: into the forwarding daemon
        target = ["--udp", f"127.0.0.1:{(args.forwarder or serve).udp}"]
    cmd = [args.replay, "--file", path, "--rate", str(args.rate), "--progress", "10", *target]
    if args.window:
        cmd += ["--window", str(args.window), "--health", serve.health]
    with open(log, "a") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        while True:
            try:
                out = proc.communicate(timeout=sampler.due())[0]
                break
            except subprocess.TimeoutExpired:
                sampler.tick()
    if proc.returncode != 0:
        raise SystemExit(f"xray_replay failed ({proc.returncode}): see {log}")
    return json.loads(out.strip().splitlines()[-1])


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def timed(fn, n):
    lat, out = [], None
    for _ in range(n):
        d, out = fn()
        lat.append(d)
    return lat, out


def web_count(graph):
    for s in graph.get("Services", []):
        if s["Name"] == "web-frontend":
            return s["SummaryStatistics"]["TotalCount"]
    return 0


def request_no(n):
    """Trace n's request_no annotation: a bijection of n scattered over 0..2^32, so the values
    arrive in no order, as ids (orders, users) do; n itself would insert in key order."""
    return (n * 2654435761) % (1 << 32)


def filters(traces):
    """Selective filters (each also run as `(F) OR false`, which no index answers: the scan)."""
    a, b = traces // 3 + 1, (2 * traces) // 3 + 1
    return {
        "annotation": f"annotation.request_no = {request_no(a)}",
        "annotation OR": f"annotation.request_no = {request_no(a)} OR annotation.request_no = {request_no(b)}",
        "service+fault": 'service("orders") { fault }',
        "url contains": 'http.url CONTAINS "/product/4242"',
        "url =": 'http.url = "https://shop.example.com/product/17"',
        "fault": "fault",
        "tier AND fault": 'annotation.customer_tier = "gold" AND fault',
        "service AND annotation": f'service("orders") AND annotation.request_no = {request_no(a - a % 2)}',
    }


def measure_queries(api, t0, now, args, ids, traces):
    """The queries over a store whose traces start between t0 and now (the clock's end): 60 s
    windows in the newest 6 h, listings over the whole range, graphs over the newest 1 h and 6 h."""
    r, q = {}, args.queries
    rng = random.Random(2)
    recent = min(6 * 3600, now - t0)

    def window():
        s = now - rng.random() * recent
        return call(api, "/TraceSummaries", {"StartTime": s - 60, "EndTime": s, "TimeRangeType": "Event"})

    whole = {"StartTime": t0 - 60, "EndTime": now + 60, "TimeRangeType": "Event"}
    r["list 60s"], _ = timed(window, q)
    for name, expr in filters(traces).items():
        r[f"list {name}"], out = timed(lambda: call(api, "/TraceSummaries", dict(whole, FilterExpression=expr)), q)
        r[f"list {name} matches"] = len(out["TraceSummaries"])
        r[f"scan {name}"], out = timed(
            lambda: call(api, "/TraceSummaries", dict(whole, FilterExpression=f"({expr}) OR false")),
            max(3, q // 10))
    r["list all"], _ = timed(lambda: call(api, "/TraceSummaries", whole), q)
    r["batch5"], _ = timed(lambda: call(api, "/Traces", {"TraceIds": rng.sample(ids, 5)}), q)
    for hours in (1, 6):
        span = {"StartTime": now - hours * 3600, "EndTime": now}
        r[f"graph {hours}h"], g = timed(lambda: call(api, "/ServiceGraph", span), max(3, q // 5))
        r[f"graph {hours}h web"] = web_count(g)
        r[f"series {hours}h"], _ = timed(
            lambda: call(api, "/TimeSeriesServiceStatistics", dict(span, Period=60)), max(3, q // 5))
    return r


def measure_moto(args, clock):
    """moto's X-Ray server (PutTraceSegments, GetTraceSummaries) on the first --moto-segments."""
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
        rng, part, n = random.Random(args.seed * 1000003), [], 0
        while len(part) < args.moto_segments:
            part += trace_docs(rng, n, clock.at(segments_before(n)) + rng.random() * Clock.JITTER, args.seed)[1]
            n += 1
        part = part[:args.moto_segments]
        cpu0, t0 = cpu_seconds(proc.pid), time.time()
        for i in range(0, len(part), 50):
            client.put_trace_segments(TraceSegmentDocuments=part[i:i + 50])
        elapsed, cpu = time.time() - t0, cpu_seconds(proc.pid) - cpu0
        lat = []
        for _ in range(min(args.queries, 10)):
            t = time.perf_counter()
            client.get_trace_summaries(StartTime=clock.t0 - 60, EndTime=clock.end(n) + 60)
            lat.append(time.perf_counter() - t)
        return {"stored": len(part), "ingest/s": len(part) / elapsed, "ingest/cpu-s": len(part) / max(cpu, 1e-9),
                "list all": lat}
    finally:
        proc.kill()


def fmt(k, v, base=None):
    if isinstance(v, str):
        return f"{k} {v}"
    if isinstance(v, list):
        s = f"{k} p50 {pct(v, 50) * 1e3:.1f} ms p99 {pct(v, 99) * 1e3:.1f} ms"
        if base:
            s += f" (x{pct(v, 50) / pct(base, 50):.2f}/x{pct(v, 99) / pct(base, 99):.2f})"
        return s
    s = f"{k} {v:.3g}" if isinstance(v, float) and v < 100 else f"{k} {v:.0f}"
    if base:
        s += f" (x{v / base:.2f})"
    return s


def report(size, r):
    print(f"--- {size} segments (load average {r.pop('load')})", flush=True)
    for k, v in r.items():
        if k.startswith("scan "):
            continue
        line = "  " + fmt(k, v)
        scan = r.get("scan " + k[5:]) if k.startswith("list ") else None
        if scan:
            line += f"  | scan (baseline) p50 {pct(scan, 50) * 1e3:.1f} ms p99 {pct(scan, 99) * 1e3:.1f} ms:" \
                    f" index/scan x{pct(v, 50) / pct(scan, 50):.3f} p50, x{pct(v, 99) / pct(scan, 99):.3f} p99"
        print(line, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--xrayd", default=os.path.join(ROOT, "build", "xrayd"))
    ap.add_argument("--replay", help="xray_replay (default: bench/xray_replay beside --xrayd, else in build-rel/ or build/)")
    ap.add_argument("--sizes", default="1000000,3000000", help="store sizes (segments) to measure at, ascending")
    ap.add_argument("--via", choices=("udp", "put", "daemon"), default="udp",
                    help="UDP datagrams, or PutTraceSegments requests to the API port (batches of 50), or UDP "
                         "into xrayd in daemon mode that forwards to the serve (--endpoint)")
    ap.add_argument("--daemon-arg", action="append", default=[],
                    help="--via daemon: extra argument for the forwarding daemon, e.g. -c CONFIG")
    ap.add_argument("--arrival", choices=("ordered", "random"), default="ordered",
                    help="ordered: traces arrive in the order of their start times, as live traffic does; "
                         "random: each size's traces at random times over its stretch of the clock")
    ap.add_argument("--rate", type=int, default=50000, help="segments/s offered at most (0: no pacing)")
    ap.add_argument("--window", type=int, default=0,
                    help="at most this many segments sent but not yet stored (0: open loop); e.g. --rate 60000 "
                         "--window 100000: the store's own pace (unpaced UDP overruns the receiver)")
    ap.add_argument("--connections", type=int, default=16, help="--via put: keep-alive connections")
    ap.add_argument("--retries", type=int, default=0, help="--via put: resend a 429/503 answer up to N times")
    ap.add_argument("--batch", type=int, default=50,
                    help="--via put: documents per request (50, the API's maximum, as daemons send; SDKs and "
                         "the CLI often send fewer)")
    ap.add_argument("--hours", type=float, default=6,
                    help="hours of trace time per million segments (the clock's speed): 1M fills the 6 h window, "
                         "10M spans 60 h; a grown store keeps the speed its state.json records")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--moto-segments", type=int, default=0, help="also run moto's server on this many segments")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pregenerate", action="store_true",
                    help="accepted for old command lines: the documents are always written before the clock starts")
    ap.add_argument("--memory-mb", type=int, default=4096,
                    help="xrayd's queue (-m): holds what the sender is ahead of the store, so nothing is lost")
    ap.add_argument("--workdir")
    ap.add_argument("--keep-docs", action="store_true", help="keep each size's document file in --workdir")
    ap.add_argument("--serve-arg", action="append", default=[], help="extra argument for xrayd serve")
    ap.add_argument("--reuse", action="store_true",
                    help="continue on the store a previous run left in --workdir (its state.json): grow it to the "
                         "--sizes above what it holds, measuring at each; with none above, measure it as it is")
    args = ap.parse_args()
    if not args.replay:  # beside --xrayd, else this checkout's build trees
        places = [os.path.dirname(os.path.abspath(args.xrayd))] + [os.path.join(ROOT, d) for d in ("build-rel", "build")]
        found = [p for p in (os.path.join(d, "bench", "xray_replay") for d in places) if os.path.exists(p)]
        if not found:
            raise SystemExit("xray_replay not found beside --xrayd or in build-rel/ or build/: build the target "
                             "xray_replay or give --replay")
        args.replay = found[0]
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.moto_segments and args.moto_segments not in sizes:
        sizes = sorted(sizes + [args.moto_segments])
    work = args.workdir or tempfile.mkdtemp(prefix="xrayd-store-bench-")
    os.makedirs(work, exist_ok=True)
    density = 1e6 / (args.hours * 3600)
    # The clock starts far enough back that 10M segments (or the largest size) still end in the
    # past: trace times stay within xrayd's default retention (168 h) and never in the future.
    clock = Clock(time.time() - max(sizes[-1], 10_000_000) / density - 300, density)
    results, ids, traces, sent, offset = {}, [], 0, 0, 0
    if args.reuse:
        with open(os.path.join(work, "state.json")) as f:
            state = json.load(f)
        sizes = [s for s in sizes if s > state.get("sent", int(state["stored"]))]
        if not sizes:
            return reuse(args, state)
        if "t0" not in state:
            raise SystemExit("state.json is from an older store_bench (random times over one window): grow a new store")
        clock, traces, ids, sent = Clock(state["t0"], state["density"]), state["traces"], state["ids"], state["sent"]
        offset = int(state["stored"])  # stored before this run (its counters start at 0)
        args.moto_segments = 0
    if clock.at(segments_before(traces_for(sizes[-1]))) > time.time():
        print("warning: the clock passes the present: the newest traces start in the future", flush=True)
    print(f"--- via {args.via}, arrival {args.arrival}, offered {args.rate or 'unpaced'}/s, clock "
          f"{clock.density:.1f} segments per second of trace time, workdir {work}", flush=True)
    with Serve(args.xrayd, work, keep_data=args.reuse, extra=args.serve_arg, memory_mb=args.memory_mb) as serve:
        args.forwarder = Forwarder(args.xrayd, work, serve.api, args.daemon_arg) if args.via == "daemon" else None
        if args.forwarder:
            atexit.register(args.forwarder.stop)  # also when a step fails
        for size in sizes:
            path = os.path.join(work, f"docs-{size}.jsonl" + (".zst" if shutil.which("zstd") else ""))
            t = time.time()
            next_traces, sample = write_docs(path, clock, args.arrival, traces, size - sent, args.seed)
            print(f"  ({size - sent} documents written in {time.time() - t:.0f} s)", flush=True)
            fwd = args.forwarder
            before = counters(serve)
            fwd_before = dict(counters(fwd), **latency_counters(fwd)) if fwd else None
            cpu0, t0 = cpu_seconds(serve.proc.pid), time.time()
            fwd_cpu0 = cpu_seconds(fwd.proc.pid) if fwd else 0
            sampler = Sampler(serve, before["stored"])
            out = replay(args, serve, path, os.path.join(work, "replay.log"), sampler)
            if fwd:
                fwd.drain(stall_seconds=300, tick=sampler.tick)
            serve.drain(stall_seconds=300, tick=sampler.tick)
            elapsed, cpu = time.time() - t0, cpu_seconds(serve.proc.pid) - cpu0
            if not args.keep_docs:
                os.remove(path)
            after = counters(serve)
            stored = after["stored"] + offset
            traces, ids, sent = next_traces, ids + sample, size
            r = {"load": load_average(), "stored": stored, "lost": size - stored,
                 "ingest/s": (after["stored"] - before["stored"]) / elapsed,
                 "ingest/cpu-s": (after["stored"] - before["stored"]) / max(cpu, 1e-9),
                 "offered/s": out["rate"], "bytes/seg": serve.disk_bytes() / max(stored, 1)}
            r.update(rejections(out, before, after))
            if fwd:  # what the forwarding daemon lost, and its own cost
                fwd_after = dict(counters(fwd), **latency_counters(fwd))
                r.update({"daemon " + k: fwd_after[k] - fwd_before[k]
                          for k in ("kernel drops", "dropped", "failed", "spilled")})
                requests = fwd_after["requests"] - fwd_before["requests"]
                r["daemon requests"] = requests
                # Each of its senders has one request out at a time: the concurrency over this is
                # the most it can forward.
                r["daemon request ms mean"] = (fwd_after["latency"] - fwd_before["latency"]) / max(requests, 1) * 1e3
                r["daemon ingest/cpu-s"] = (after["stored"] - before["stored"]) / max(
                    cpu_seconds(fwd.proc.pid) - fwd_cpu0, 1e-9)
            r["stored/s per 10 s"] = intervals(sampler.samples)
            with open(os.path.join(work, "state.json"), "w") as f:  # for --reuse
                json.dump({"t0": clock.t0, "density": clock.density, "now": clock.end(traces), "traces": traces,
                           "ids": ids, "stored": stored, "sent": sent, "hours": 1e6 / 3600 / clock.density}, f)
            r.update(measure_queries(serve.api, clock.t0, clock.end(traces), args, ids, traces))
            results[size] = r
            report(size, dict(r))
        if args.forwarder:
            args.forwarder.stop()
    growth(results)
    if args.moto_segments:
        m = measure_moto(args, clock)
        x = results[args.moto_segments]
        print(f"--- moto {moto_version()} at {args.moto_segments} segments, against xrayd at the same size", flush=True)
        print("  moto: " + "; ".join(fmt(k, v) for k, v in m.items()), flush=True)
        print(f"  xrayd/moto: ingest per CPU-second x{x['ingest/cpu-s'] / m['ingest/cpu-s']:.1f}; whole-range listing "
              f"p50 x{pct(x['list all'], 50) / pct(m['list all'], 50):.4f}, "
              f"p99 x{pct(x['list all'], 99) / pct(m['list all'], 99):.4f}", flush=True)


COUNTERS = {"stored": "xrayd_segments_sent_total", "udp received": "xrayd_segments_received_total",
            "rejected": "xrayd_segments_rejected_total", "kernel drops": "xrayd_udp_kernel_drops_total",
            "dropped": "xrayd_exporter_dropped_total", "failed": "xrayd_segments_failed_total",
            "spilled": "xrayd_segments_spilled_total", "http refused": "xrayd_http_refused_total"}


def counters(serve):
    return {k: metric(serve.health, m) for k, m in COUNTERS.items()}


def latency_counters(daemon):
    """The forwarding daemon's PutTraceSegments requests and their summed latency (seconds)."""
    return {"requests": metric(daemon.health, "xrayd_export_latency_seconds_count"),
            "latency": metric(daemon.health, "xrayd_export_latency_seconds_sum")}


def rejections(out, before, after):
    """What was not stored, by where it went: xrayd's counters (this size's change) and the replayer's."""
    r = {k: after[k] - before[k] for k in ("rejected", "kernel drops", "dropped", "failed", "spilled")}
    if out["mode"] == "udp":
        r["send errors"] = out["errors"]
    else:
        r.update({"UnprocessedTraceSegments": out["unprocessed"], "http refused": after["http refused"] - before["http refused"], "non-2xx documents": out["refused_documents"],
                  "failed documents": out["failed_documents"], "retries": out["retries"],
                  "statuses": " ".join(f"{k}:{v}" for k, v in out["statuses"].items()),
                  "put latency ms p50/p99/max": f"{out['latency_ms_p50']:.0f}/{out['latency_ms_p99']:.0f}/"
                                                f"{out['latency_ms_max']:.0f}"})
    return r


def intervals(samples):
    """Stored per second in each 10 s from the first send until drained, as text (k = thousands)."""
    rates, last = [], (0.0, samples[0][1] if samples else 0)
    for t, v in samples[1:]:
        rates.append(f"{(v - last[1]) / max(t - last[0], 1e-9) / 1000:.1f}k")
        last = (t, v)
    return " ".join(rates)


def growth(results):
    """Each cost's p50/p99 at every size, and its growth from the first size to the last."""
    sizes = sorted(results)
    if len(sizes) < 2:
        return
    print("--- growth with size (p50/p99 ms; last/first)", flush=True)
    print("  " + " | ".join(["cost".ljust(28)] + [f"{s:>13,}" for s in sizes] + ["growth"]), flush=True)
    first, last = results[sizes[0]], results[sizes[-1]]
    for k, v in first.items():
        if not isinstance(v, list) or k.startswith("scan "):
            continue
        cells = [f"{pct(results[s][k], 50) * 1e3:6.1f}/{pct(results[s][k], 99) * 1e3:6.1f}" for s in sizes]
        g = f"x{pct(last[k], 50) / pct(v, 50):.2f}/x{pct(last[k], 99) / pct(v, 99):.2f}"
        print("  " + " | ".join([k.ljust(28)] + cells + [g]), flush=True)
    for k in ("ingest/s", "ingest/cpu-s", "offered/s", "bytes/seg", "lost"):
        print("  " + " | ".join([k.ljust(28)] + [f"{results[s].get(k, 0):13.0f}" for s in sizes]), flush=True)


def reuse(args, state):
    """The queries of one size on the store and state.json an earlier run left in --workdir (e.g. to
    compare two binaries on the same data, one after the other)."""
    t0 = state.get("t0", state["now"] - state["hours"] * 3600)  # older state: one window of --hours
    with Serve(args.xrayd, args.workdir, keep_data=True, extra=args.serve_arg, memory_mb=args.memory_mb) as serve:
        r = {"load": load_average(), "stored": state["stored"], "bytes/seg": serve.disk_bytes() / state["stored"]}
        r.update(measure_queries(serve.api, t0, state["now"], args, state["ids"], state["traces"]))
        report(int(state["stored"]), r)


def moto_version():
    try:
        import moto
        return moto.__version__
    except Exception:
        return "?"


if __name__ == "__main__":
    main()
