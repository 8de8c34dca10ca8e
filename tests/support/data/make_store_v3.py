#!/usr/bin/env python3
"""Writes store_v3.db: a trace store written by xrayd before per-minute graph rollups (schema 3,
commit f6cc6ee), kept as test data for the schema migration (src/store/trace_store_migration_test.cc).

    python3 tests/support/data/make_store_v3.py OLD_BUILD/xrayd tests/support/data/store_v3.db

It starts `OLD xrayd serve`, sends 40 three-service traces by PutTraceSegments (web -> api ->
remote "ledger" and AWS DynamoDB; every 5th faults in api, every 7th errors; every 4th trace's api
segment streams one subsegment as an independent document), stops it (SIGTERM checkpoints the WAL)
and copies traces.db. Times: 2026-01-01T00:00:00Z + i * 20 s."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

T0 = 1767225600.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hexid(n, tag):
    return f"{tag:x}{n:015x}"[-16:]


def trace(i):
    tid = f"1-{int(T0 + i * 20):08x}-{i:024x}"
    t = T0 + i * 20
    call_api = {"id": hexid(i, 0xc), "name": "api", "namespace": "remote", "start_time": t + 0.01, "end_time": t + 0.31,
                "http": {"request": {"method": "GET", "url": "http://api/items"}, "response": {"status": 200}}}
    web = {"trace_id": tid, "id": hexid(i, 0xa), "name": "web", "origin": "AWS::EC2::Instance", "start_time": t,
           "end_time": t + 0.4, "http": {"request": {"method": "GET", "url": f"http://web/page/{i % 3}"},
                                         "response": {"status": 200}},
           "annotations": {"tier": "gold" if i % 2 else "silver", "n": i}, "subsegments": [call_api]}
    ledger = {"id": hexid(i, 0xd), "name": "ledger", "namespace": "remote", "start_time": t + 0.05,
              "end_time": t + 0.05 + 0.01 * (i % 10), "fault": i % 5 == 0}
    dynamo = {"id": hexid(i, 0xe), "name": "DynamoDB", "namespace": "aws", "start_time": t + 0.2, "end_time": t + 0.25,
              "aws": {"operation": "GetItem"}, "throttle": i % 6 == 0, "error": i % 6 == 0}
    api = {"trace_id": tid, "id": hexid(i, 0xb), "parent_id": call_api["id"], "name": "api", "start_time": t + 0.02,
           "end_time": t + 0.3, "fault": i % 5 == 0, "error": i % 7 == 0, "subsegments": [ledger]}
    docs = [web, api]
    if i % 4 == 0:  # streamed: the DynamoDB call as an independent subsegment of api
        docs.append(dict(dynamo, trace_id=tid, type="subsegment", parent_id=api["id"]))
    else:
        api["subsegments"].append(dynamo)
    return docs


def main():
    xrayd, out = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="xrayd-store-v3-")
    api, health, udp = free_port(), free_port(), free_port()
    proc = subprocess.Popen([xrayd, "serve", "--data-dir", work, "--listen", f"127.0.0.1:{api}", "-b",
                             f"127.0.0.1:{udp}", "-t", f"127.0.0.1:{udp}", "--health-address", f"127.0.0.1:{health}",
                             "-l", "warn"])
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{health}/metrics", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        docs = [json.dumps(d) for i in range(40) for d in trace(i)]
        req = urllib.request.Request(f"http://127.0.0.1:{api}/TraceSegments", method="POST",
                                     data=json.dumps({"TraceSegmentDocuments": docs}).encode(),
                                     headers={"Content-Type": "application/json"})
        body = json.loads(urllib.request.urlopen(req, timeout=10).read())
        assert not body.get("UnprocessedTraceSegments"), body
        time.sleep(2)  # the store exporter's batch
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    shutil.copy(os.path.join(work, "traces.db"), out)
    shutil.rmtree(work)
    print(f"wrote {out} ({os.path.getsize(out)} bytes, {len(docs)} documents)")


if __name__ == "__main__":
    main()
