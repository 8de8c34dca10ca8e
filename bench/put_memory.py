#!/usr/bin/env python3
"""Memory of `xrayd serve` under huge PutTraceSegments bodies (a benchmark, not a test).

Starts `xrayd serve` on a fresh data dir and free 127.0.0.1 ports, then sends --concurrency
PutTraceSegments requests at once, each a body of about --body-mb MB holding documents of about
--doc-kb KB (one trace per document), --rounds times. Each sender retries a 503/429 after its
Retry-After (as AWS SDKs do), so every document must get in. Meanwhile VmRSS and RssAnon of the
xrayd process are sampled every 20 ms from /proc/PID/status. Prints, per binary: idle RSS, peak RSS
(and its anonymous part; the rest is file-backed, e.g. SQLite's mmap), RSS 1 s and 5 s after the last answer, the statuses seen (200, 503, ...), the seconds the sends took, the
http refusals by reason from /metrics, and the documents stored (xrayd_exporter_delivered_total
and the traces GetTraceSummaries lists over the run's range) against the documents sent.

`--also LABEL=PATH` (repeatable) runs other builds in the same run; `--repeat N` alternates them
(A B A B ...) and the table shows every run plus each figure's ratio against the first binary's
median.

    python3 bench/put_memory.py --xrayd build-rel/xrayd --also old=/work/wt/acae/build-rel/xrayd
"""
import argparse
import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from store_common import Serve, metric  # noqa: E402


def rss_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """VmRSS and RssAnon of `pid` every `period` s; `peak` and `peak_anon` are the largest seen."""

    def __init__(self, pid, period=0.02):
        super().__init__(daemon=True)
        self.pid, self.period, self.peak, self.peak_anon, self.running = pid, period, 0, 0, True

    def run(self):
        while self.running:
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            self.peak = max(self.peak, int(line.split()[1]))
                        elif line.startswith("RssAnon:"):
                            self.peak_anon = max(self.peak_anon, int(line.split()[1]))
            except OSError:
                return
            time.sleep(self.period)


def make_bodies(count, body_bytes, doc_bytes, now):
    """`count` bodies of about `body_bytes`, documents of about `doc_bytes`; returns (bodies, docs per body)."""
    pad = "x" * max(0, doc_bytes - 200)
    epoch = f"{int(now):08x}"
    bodies, per_body = [], 0
    for _ in range(count):
        docs, size = [], 40
        while True:
            doc = json.dumps({"trace_id": f"1-{epoch}-{uuid.uuid4().hex[:24]}", "id": uuid.uuid4().hex[:16],
                              "name": "put-memory", "start_time": now, "end_time": now + 0.01,
                              "metadata": {"default": {"pad": pad}}})
            text = json.dumps(doc)
            if docs and size + len(text) + 1 > body_bytes:
                break
            docs.append(text)
            size += len(text) + 1
        bodies.append(('{"TraceSegmentDocuments":[' + ",".join(docs) + "]}").encode())
        per_body = len(docs)
    return bodies, per_body


def send(api, body, statuses, lock, deadline):
    """POSTs `body` until it gets a 200 (retrying 503/429 after Retry-After, with jitter, as SDKs do)."""
    host, port = api.split(":")
    while time.time() < deadline:
        status, retry_after = None, 1.0
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=120)
            conn.request("POST", "/TraceSegments", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            out = resp.read()
            status = resp.status
            retry_after = float(resp.getheader("Retry-After") or 1)
            if status == 200 and json.loads(out).get("UnprocessedTraceSegments"):
                status = "200-unprocessed"
            conn.close()
        except (OSError, http.client.HTTPException) as e:
            status = type(e).__name__
        with lock:
            statuses[status] = statuses.get(status, 0) + 1
        if status in (200, "200-unprocessed"):
            return
        time.sleep(retry_after * random.uniform(0.5, 1.5))


def count_traces(api, start, end):
    """Traces GetTraceSummaries lists in [start, end] (every page)."""
    host, port = api.split(":")
    total, token = 0, None
    while True:
        req = {"StartTime": start, "EndTime": end}
        if token:
            req["NextToken"] = token
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        conn.request("POST", "/TraceSummaries", body=json.dumps(req), headers={"Content-Type": "application/json"})
        out = json.loads(conn.getresponse().read())
        conn.close()
        total += len(out.get("TraceSummaries", []))
        token = out.get("NextToken")
        if not token:
            return total


def refusals(health):
    import urllib.request
    text = urllib.request.urlopen(f"http://{health}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("xrayd_http_refused_total{") and 'listener="api"' in line:
            value = float(line.rsplit(" ", 1)[1])
            if value:
                reason = line.split('reason="', 1)[1].split('"', 1)[0]
                out[reason] = int(value)
    return out


def start_serve(label, binary, args, work):
    """Serve with the environment variables --env gives `label` (e.g. GLIBC_TUNABLES)."""
    extra_env = dict(e.split(":", 1)[1].split("=", 1) for e in args.env if e.split(":", 1)[0] == label)
    saved = {k: os.environ.get(k) for k in extra_env}
    os.environ.update(extra_env)
    try:
        return Serve(binary, work, extra=args.serve_arg)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v


def run_one(label, binary, args, work):
    t_start = time.time() - 5
    with start_serve(label, binary, args, work) as serve:
        pid = serve.proc.pid
        time.sleep(1)
        idle = rss_kb(pid)
        sampler = Sampler(pid)
        sampler.start()
        statuses, lock = {}, threading.Lock()
        sent_docs, send_seconds = 0, 0.0
        for _ in range(args.rounds):
            bodies, per_body = make_bodies(args.concurrency, int(args.body_mb * 1e6), int(args.doc_kb * 1000), time.time())
            sent_docs += per_body * len(bodies)
            deadline = time.time() + args.timeout
            threads = [threading.Thread(target=send, args=(serve.api, b, statuses, lock, deadline)) for b in bodies]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            send_seconds += time.perf_counter() - t0
            del bodies, threads
        t_done = time.perf_counter()
        time.sleep(max(0.0, 1 - (time.perf_counter() - t_done)))
        after1 = rss_kb(pid)
        time.sleep(max(0.0, 5 - (time.perf_counter() - t_done)))
        after5, after5_anon = rss_kb(pid), rss_kb(pid, "RssAnon")
        sampler.running = False
        sampler.join()
        # Every document stored: the store exporter's delivered count, then the traces the API lists.
        for _ in range(600):
            delivered = metric(serve.health, "xrayd_exporter_delivered_total")
            if delivered >= sent_docs and metric(serve.health, "xrayd_exporter_queued_segments") == 0:
                break
            time.sleep(0.1)
        listed = count_traces(serve.api, t_start, time.time() + 5)
        return {"label": label, "idle_mb": idle / 1024, "peak_mb": sampler.peak / 1024,
                "peak_anon_mb": sampler.peak_anon / 1024, "after1_mb": after1 / 1024, "after5_mb": after5 / 1024, "after5_anon_mb": after5_anon / 1024, "send_s": send_seconds, "sent_docs": sent_docs,
                "delivered": int(delivered), "listed": listed, "statuses": statuses,
                "refused": refusals(serve.health)}


FIGURES = [("idle RSS (MB)", "idle_mb"), ("peak RSS (MB)", "peak_mb"), ("  of it RssAnon (MB)", "peak_anon_mb"), ("RSS 1 s after (MB)", "after1_mb"),
           ("RSS 5 s after (MB)", "after5_mb"), ("  of it RssAnon (MB) ", "after5_anon_mb"), ("sends took (s)", "send_s")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xrayd", default="build-rel/xrayd")
    ap.add_argument("--also", action="append", default=[], metavar="LABEL=PATH")
    ap.add_argument("--concurrency", type=int, default=40)
    ap.add_argument("--body-mb", type=float, default=7.5)
    ap.add_argument("--doc-kb", type=float, default=60)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="runs per binary, alternating binaries")
    ap.add_argument("--timeout", type=float, default=300, help="seconds a sender keeps retrying")
    ap.add_argument("--serve-arg", action="append", default=[], help="extra argument for xrayd serve")
    ap.add_argument("--env", action="append", default=[], metavar="LABEL:NAME=VALUE",
                    help="environment variable for that binary's xrayd (label 'this' for --xrayd)")
    ap.add_argument("--out", help="write every run as JSON")
    args = ap.parse_args()
    binaries = [("this", args.xrayd)] + [tuple(a.split("=", 1)) for a in args.also]
    print(f"load average at start: {os.getloadavg()}", flush=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="put_memory.") as work:
        for i in range(args.repeat):
            order = binaries if i % 2 == 0 else list(reversed(binaries))
            for label, path in order:
                r = run_one(label, path, args, work)
                ok = "all stored" if r["delivered"] >= r["sent_docs"] and r["listed"] >= r["sent_docs"] else "MISSING"
                print(f"{label:>8}: idle {r['idle_mb']:.0f} MB, peak {r['peak_mb']:.0f} MB ({r['peak_anon_mb']:.0f} anon), after 1 s "
                      f"{r['after1_mb']:.0f} MB, after 5 s {r['after5_mb']:.0f} MB ({r['after5_anon_mb']:.0f} anon), sends {r['send_s']:.1f} s, "
                      f"statuses {r['statuses']}, refused {r['refused']}, docs sent {r['sent_docs']} delivered "
                      f"{r['delivered']} listed {r['listed']}: {ok}", flush=True)
                runs.append(r)
    print(f"load average at end: {os.getloadavg()}")
    base = binaries[0][0]
    print(f"\n{'figure (median)':<22}" + "".join(f"{label:>10}" for label, _ in binaries) +
          "".join(f"{label + '/' + base:>14}" for label, _ in binaries[1:]))
    for name, key in FIGURES:
        med = {label: statistics.median(r[key] for r in runs if r["label"] == label) for label, _ in binaries}
        print(f"{name:<22}" + "".join(f"{med[label]:>10.1f}" for label, _ in binaries) +
              "".join(f"{med[label] / med[base] if med[base] else float('nan'):>14.2f}" for label, _ in binaries[1:]))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(runs, f, indent=1)
    return 0 if all(r["delivered"] >= r["sent_docs"] and r["listed"] >= r["sent_docs"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
