#!/usr/bin/env python3
"""The hello example end to end with `xrayd serve` as its daemon: a client sends GET / with an
X-Amzn-Trace-Id carrying Root and Parent; hello (examples/hello, the C++ SDK) sends its segments to
xrayd's UDP port (and asks its TCP port for sampling rules); the trace is read back with boto3.

Checked: the trace id hello answers with is the Root sent; BatchGetTraces returns exactly hello's
segment and its downstream segment, all with that trace id; hello's segment has the Parent sent as
parent_id and one "remote" subsegment for its call; the downstream segment's parent_id is that
subsegment's id; GetTraceGraph and GetServiceGraph show the edge hello → hello-downstream (and none
back). A second request without a trace header starts a new trace with the same links.

    python3 tests/e2e/test_sdk_hello_serve.py --xrayd build/xrayd --hello build/examples/hello/hello [-v]

Needs boto3 for `python3`; without it this test FAILS.
"""

import json
import os
import re
import sys
import time

import harness
import sdk_apps
import serve_harness as sh

try:
    import boto3
    import botocore.config
except ImportError:  # reported by the test
    boto3 = None

SERVICE = "hello-e2e"
DOWNSTREAM = SERVICE + "-downstream"


class HelloWithXraydServe(sh.ServeTestCase):
    def setUp(self):
        if boto3 is None:
            self.fail("boto3 is missing for this python3: the traces are read back with it")
        super().setUp()
        self.xray = boto3.client(
            "xray", endpoint_url=self.xrayd.endpoint, region_name=sh.REGION,
            aws_access_key_id=sh.DUMMY_ACCESS_KEY_ID, aws_secret_access_key=sh.DUMMY_SECRET_ACCESS_KEY,
            config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))
        self.addCleanup(self.xray.close)
        port = harness.free_tcp_port()
        env = sdk_apps.base_env(port, SERVICE,
                                f"tcp:127.0.0.1:{self.xrayd.tcp_port} udp:127.0.0.1:{self.xrayd.udp_port}")
        self.hello = sdk_apps.App([sdk_apps.HELLO_BIN], env, port, os.path.join(self.xrayd.dir, "hello.log"))
        self.addCleanup(self.hello.kill)

    def tearDown(self):
        if self._outcome_failed():
            print(f"\n--- hello log ---\n{self.hello.log()}", file=sys.stderr)
        super().tearDown()

    def request(self, headers=None) -> str:
        """GET / → the trace id hello answers with."""
        status, body, _ = self.hello.get("/", headers)
        self.assertEqual(status, 200)
        m = re.fullmatch(r"Hello, X-Ray! Trace ID: (1-[0-9a-f]{8}-[0-9a-f]{24})\n", body)
        self.assertIsNotNone(m, body)
        return m.group(1)

    def trace(self, tid: str, timeout: float = 15.0) -> list:
        """Polls BatchGetTraces (boto3) until the trace has two segments, the downstream one under a
        subsegment of the other; returns the parsed documents."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.xray.batch_get_traces(TraceIds=[tid])
            self.assertEqual(out.get("UnprocessedTraceIds", []), [])
            docs = [json.loads(s["Document"]) for t in out["Traces"] if t["Id"] == tid for s in t["Segments"]]
            if {d.get("name") for d in docs} >= {SERVICE, DOWNSTREAM}:
                self.assertEqual([t["Id"] for t in out["Traces"]], [tid])
                return docs
            if time.monotonic() > deadline:
                self.fail(f"trace {tid} incomplete after {timeout} s: {docs}\n{self.xrayd.log_tail()}")
            time.sleep(0.1)

    def check_links(self, tid: str, parent=None) -> dict:
        docs = self.trace(tid)
        self.assertEqual(sorted(d["name"] for d in docs), [SERVICE, DOWNSTREAM], docs)
        front = next(d for d in docs if d["name"] == SERVICE)
        down = next(d for d in docs if d["name"] == DOWNSTREAM)
        for d in docs:
            self.assertEqual(d["trace_id"], tid)
            for node, _ in sh.walk(d):
                self.assertNotIn("in_progress", node)
        if parent is None:
            self.assertNotIn("parent_id", front)  # hello started the trace
        else:
            self.assertEqual(front["parent_id"], parent)
        [call] = [s for s in front.get("subsegments", []) if s.get("namespace") == "remote"]
        self.assertEqual(call["http"]["request"]["url"], f"http://127.0.0.1:{self.hello.port}/downstream")
        self.assertEqual(call["http"]["response"]["status"], 200)
        self.assertEqual(down["parent_id"], call["id"])
        self.assertEqual(down["http"]["request"]["url"], f"http://127.0.0.1:{self.hello.port}/downstream")
        self.assertLessEqual(front["start_time"], down["start_time"])
        self.assertLessEqual(down["end_time"], front["end_time"])
        return {"front": front, "call": call, "down": down}

    def assert_edge(self, services: list, where: str):
        by_name = {s.get("Name"): s for s in services}
        self.assertIn(SERVICE, by_name, f"{where}: {services}")
        self.assertIn(DOWNSTREAM, by_name, f"{where}: {services}")
        front, down = by_name[SERVICE], by_name[DOWNSTREAM]
        targets = [e["ReferenceId"] for e in front.get("Edges", [])]
        self.assertIn(down["ReferenceId"], targets, f"{where}: no edge {SERVICE} → {DOWNSTREAM}: {services}")
        self.assertNotIn(front["ReferenceId"], [e["ReferenceId"] for e in down.get("Edges", [])],
                         f"{where}: an edge back from {DOWNSTREAM}")
        [edge] = [e for e in front["Edges"] if e["ReferenceId"] == down["ReferenceId"]]
        self.assertGreaterEqual(edge["SummaryStatistics"]["TotalCount"], 1, edge)

    def test_trace_header_continued_with_parent_child_links(self):
        root, parent = sh.trace_id(), sh.new_id()
        t0 = time.time() - 2
        tid = self.request({sdk_apps.TRACE_HEADER: f"Root={root};Parent={parent};Sampled=1",
                            "User-Agent": "xrayd-hello-e2e/1.0"})
        self.assertEqual(tid, root)
        got = self.check_links(tid, parent)
        self.assertEqual(got["front"]["http"]["request"]["user_agent"], "xrayd-hello-e2e/1.0")
        self.assertEqual(got["front"]["aws"]["xray"]["sdk"], "X-Ray for C++")

        graph = self.xray.get_trace_graph(TraceIds=[tid])
        self.assert_edge(graph["Services"], "GetTraceGraph")
        service_graph = self.xray.get_service_graph(StartTime=t0, EndTime=time.time() + 2)
        self.assert_edge(service_graph["Services"], "GetServiceGraph")

        # Without a header hello starts the trace itself (its first request in a second is sampled
        # by the default rule, which xrayd's sampling proxy serves as well).
        tid2 = self.request()
        self.assertNotEqual(tid2, tid)
        self.check_links(tid2)

        self.assertEqual(self.hello.stop(), 0, self.hello.log())
        self.assert_alive()


if __name__ == "__main__":
    sdk_apps.main()
