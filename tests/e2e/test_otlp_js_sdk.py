#!/usr/bin/env python3
"""The OpenTelemetry bridge's receiver end to end: the real OpenTelemetry JS SDK
(@opentelemetry/sdk-trace-node with exporter-trace-otlp-proto and -http, id-generator-aws-xray,
propagator-aws-xray; tests/e2e/otlp_js_client.mjs) sends a two-service trace to
`xrayd serve --otlp-listen`; boto3 reads it back through the X-Ray API: BatchGetTraces (structure),
GetServiceGraph (frontend -> backend -> DynamoDB) and GetTraceSummaries with a filter expression on an
indexed attribute (--otlp-indexed-attributes). Then the receiver's faults over a raw socket: malformed
protobuf (400), a 10 MB body (413), random (non-X-Ray) trace ids (200 with partial success), a wrong
content type (415): counted, and xrayd keeps serving.

Needs node 20+ and tests/e2e/node_modules (`npm ci`), and boto3.

    python3 tests/e2e/test_otlp_js_sdk.py --xrayd build/xrayd [-v]
"""

import datetime
import json
import os
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.request

import boto3
from botocore.config import Config

import harness
import serve_harness as sh

JS_CLIENT = os.path.join(harness.HERE, "otlp_js_client.mjs")


def post(url: str, body: bytes, content_type: str, timeout: float = 10.0):
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class OtlpJsSdkTest(sh.ServeTestCase):
    def start_serve(self, **kw):
        self.otlp_port = harness.free_tcp_port()
        kw.setdefault("extra_args", ["--otlp-listen", f"127.0.0.1:{self.otlp_port}",
                                     "--otlp-indexed-attributes", "customer.tier"])
        return super().start_serve(**kw)

    def xray(self):
        return boto3.client("xray", endpoint_url=self.xrayd.endpoint, region_name=sh.REGION,
                            aws_access_key_id=sh.DUMMY_ACCESS_KEY_ID,
                            aws_secret_access_key=sh.DUMMY_SECRET_ACCESS_KEY,
                            config=Config(retries={"max_attempts": 1}))

    def run_js_client(self) -> dict:
        out = subprocess.run(["node", JS_CLIENT, f"http://127.0.0.1:{self.otlp_port}"], cwd=harness.HERE,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        return json.loads(out.stdout.strip().splitlines()[-1])

    def wait_trace(self, client, trace_id: str, want_ids: set, timeout: float = 15.0) -> list:
        deadline = time.monotonic() + timeout
        while True:
            traces = client.batch_get_traces(TraceIds=[trace_id])["Traces"]
            docs = [json.loads(s["Document"]) for t in traces for s in t["Segments"]]
            seen = {d["id"] for d in docs} | {s["id"] for d in docs for s, _ in self.walk(d)}
            if want_ids <= seen or time.monotonic() > deadline:
                return docs
            time.sleep(0.2)

    def walk(self, doc, parent=None):
        for sub in doc.get("subsegments", []):
            yield sub, doc
            yield from self.walk(sub, sub)

    def test_js_sdk_trace_reads_back_through_the_xray_api(self):
        sent = self.run_js_client()
        tid, ids = sent["trace_id"], sent["spans"]
        self.assertTrue(sent["header"].startswith(f"Root={tid};Parent={ids['call-backend']}"), sent["header"])
        client = self.xray()
        docs = self.wait_trace(client, tid, set(ids.values()))
        by_name = {d["name"]: d for d in docs}
        self.assertEqual(set(by_name), {"frontend", "backend"}, docs)

        front = by_name["frontend"]
        self.assertEqual(front["id"], ids["frontend"])
        self.assertEqual(front["origin"], "AWS::EC2::Instance")
        self.assertEqual(front["http"]["request"]["method"], "GET")
        self.assertEqual(front["http"]["response"]["status"], 200)
        self.assertEqual(front["annotations"], {"customer_tier": "gold"})
        self.assertEqual(front["metadata"]["default"]["cart.items"], 3)
        call = {s["id"]: s for s, _ in self.walk(front)}[ids["call-backend"]]
        self.assertEqual((call["name"], call["namespace"], call.get("fault")), ("backend", "remote", True))
        self.assertEqual(call["http"]["response"]["status"], 500)

        back = by_name["backend"]
        self.assertEqual(back["parent_id"], ids["call-backend"])  # the hop, through X-Amzn-Trace-Id
        self.assertTrue(back.get("fault"))
        subs = {s["id"]: s for s, _ in self.walk(back)}
        ddb = subs[ids["dynamodb"]]
        self.assertEqual((ddb["name"], ddb["namespace"]), ("DynamoDB", "aws"))
        self.assertEqual(ddb["aws"]["operation"], "GetItem")
        self.assertEqual(ddb["aws"]["table_name"], "orders")
        work = subs[ids["compute-total"]]
        self.assertTrue(work.get("fault"))
        self.assertEqual(work["cause"]["exceptions"][0]["message"], "out of stock")
        self.assertEqual(work["cause"]["exceptions"][0]["type"], "Error")

        start = datetime.datetime.fromtimestamp(front["start_time"] - 60, datetime.timezone.utc)
        end = datetime.datetime.fromtimestamp(front["end_time"] + 60, datetime.timezone.utc)
        graph = client.get_service_graph(StartTime=start, EndTime=end)
        services = {(s["Name"], s.get("Type")): s for s in graph["Services"]}
        names = {n for n, _ in services}
        self.assertTrue({"frontend", "backend", "DynamoDB"} <= names, services.keys())
        self.assertIn(("DynamoDB", "AWS::DynamoDB"), services)
        ids_by_name = {n: s["ReferenceId"] for (n, _), s in services.items()}
        front_edges = {e["ReferenceId"] for (n, _), s in services.items() if n == "frontend" for e in s.get("Edges", [])}
        self.assertIn(ids_by_name["backend"], front_edges)
        back_edges = {e["ReferenceId"] for (n, _), s in services.items() if n == "backend" for e in s.get("Edges", [])}
        self.assertIn(ids_by_name["DynamoDB"], back_edges)

        for expr, want in (('annotation.customer_tier = "gold"', True), ('annotation.customer_tier = "silver"', False)):
            summaries = client.get_trace_summaries(StartTime=start, EndTime=end, FilterExpression=expr)
            found = tid in {s["Id"] for s in summaries["TraceSummaries"]}
            self.assertEqual(found, want, expr)

    def test_receiver_faults_are_answered_and_counted_never_a_crash(self):
        url = f"http://127.0.0.1:{self.otlp_port}/v1/traces"
        status, _ = post(url, b"\x0a\xff\xff\xff\xff\x0f garbage", "application/x-protobuf")
        self.assertEqual(status, 400)
        status, _ = post(url, b"{not json", "application/json")
        self.assertEqual(status, 400)
        status, _ = post(url, b"x", "text/plain")
        self.assertEqual(status, 415)
        try:
            status, _ = post(url, b"\x0a" * (10 * 1024 * 1024), "application/x-protobuf")
            self.assertEqual(status, 413)
        except (ConnectionError, urllib.error.URLError):
            pass  # refused mid-upload (the server closes after answering 413): also a refusal
        now = int(time.time())
        span = {"traceId": "f" * 32, "spanId": "0123456789abcdef", "name": "random-id", "kind": 2,
                "startTimeUnixNano": str(now * 10**9), "endTimeUnixNano": str(now * 10**9 + 1000)}
        good = dict(span, traceId=f"{now:08x}" + "a" * 24, spanId="1123456789abcdef")
        body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                                   "scopeSpans": [{"spans": [span, good]}]}]}
        status, answer = post(url, json.dumps(body).encode(), "application/json")
        self.assertEqual(status, 200, answer)
        partial = json.loads(answer)["partialSuccess"]
        self.assertEqual(int(partial["rejectedSpans"]), 1)
        self.assertIn("trace ids", partial["errorMessage"])
        self.xray()  # and xrayd still serves: the good span is stored
        docs = self.wait_trace(self.xray(), f"1-{now:08x}-" + "a" * 24, {"1123456789abcdef"})
        self.assertEqual([d["name"] for d in docs], ["svc"])
        self.assert_alive()


if __name__ == "__main__":
    harness.main()
