#!/usr/bin/env python3
"""Round trip through `xrayd serve`: the real X-Ray SDKs send segments to its UDP port, and the
traces come back through the X-Ray API, read with boto3, with every (sub)segment under the right
parent; then xrayd is restarted on the same data directory and the traces are still there.

* node_client.js (npm aws-xray-sdk-core): annotations, nested subsegments, errors, captured HTTP
  calls, a middleware-traced request with an upstream parent, in-progress segments and subsegments,
  110 streamed subsegments, a ~50 KB document, 75 small traces.
* python_client.py under `python3` (aws_xray_sdk 2.x) and, when it has the SDK, /usr/bin/python3
  (Debian's 0.95): the same kinds of content, 45 streamed subsegments.

What the SDKs sent is taken from their own datagrams (the clients record them), so the expected
trees are exactly what went over the wire: every segment a top-level segment of its trace, every
subsegment (embedded or streamed alone) under the parent it named, nothing twice, and each node
with its name, annotations and final end_time.

Needs node and tests/e2e/node_modules (`npm ci`), boto3 and aws_xray_sdk for `python3`: without
them this test FAILS. Tests decorated with @known_bug pin down xrayd bugs; they are expected to fail
until fixed.

    python3 tests/e2e/test_serve_sdk_roundtrip.py --xrayd build/xrayd [-v]
"""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest

import harness
import serve_harness as sh
from serve_harness import known_bug

NODE_CLIENT = os.path.join(harness.HERE, "node_client.js")
PYTHON_CLIENT = os.path.join(harness.HERE, "python_client.py")
NODE_SDK_DIR = os.path.join(harness.HERE, "node_modules", "aws-xray-sdk-core")
DEBIAN_PYTHON = "/usr/bin/python3"

try:
    import boto3
    import botocore.config
except ImportError:  # reported by the tests, which then fail
    boto3 = None


# --------------------------------------------------------------------------------------------
# What the SDKs sent → the trees X-Ray should return


class Expected:
    """Built from datagrams: per trace, the top-level segment ids, each node's parent, and each
    node's final version (complete beats in-progress; the last of equals wins)."""

    def __init__(self):
        self.traces: dict[str, dict] = {}

    def trace(self, tid):
        return self.traces.setdefault(tid, {"segments": set(), "parent": {}, "node": {}, "in_progress_alone": set()})

    def add_datagrams(self, datagrams):
        for d in datagrams:
            header, _, body = d.partition("\n")
            assert json.loads(header) == {"format": "json", "version": 1}, header
            self.add(json.loads(body))

    def add(self, doc):
        t = self.trace(doc["trace_id"])
        independent = doc.get("type") == "subsegment"
        if independent:
            t["parent"][doc["id"]] = doc["parent_id"]
            if doc.get("in_progress"):
                t["in_progress_alone"].add(doc["id"])
        else:
            t["segments"].add(doc["id"])
            t["parent"].setdefault(doc["id"], None)
        for node, parent in sh.walk(doc):
            if node is not doc:
                t["parent"][node["id"]] = parent
            old = t["node"].get(node["id"])
            if old is None or not node.get("in_progress") or old.get("in_progress"):
                t["node"][node["id"]] = node

    def ids(self) -> dict:
        return {tid: set(t["parent"]) for tid, t in self.traces.items()}

    def superseded_in_progress(self, tid) -> set:
        """Ids sent alone while in progress and later completed inside their parent's document."""
        t = self.traces[tid]
        return {i for i in t["in_progress_alone"] if not t["node"][i].get("in_progress")}


def xray_client(endpoint: str):
    return boto3.client("xray", endpoint_url=endpoint, region_name=sh.REGION,
                        aws_access_key_id=sh.DUMMY_ACCESS_KEY_ID, aws_secret_access_key=sh.DUMMY_SECRET_ACCESS_KEY,
                        config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))


def fetch_traces(endpoint: str, trace_ids) -> dict:
    """BatchGetTraces through boto3, 5 ids a call → {trace id: [parsed segment documents]}."""
    xray = xray_client(endpoint)
    out = {}
    tids = sorted(trace_ids)
    try:
        for i in range(0, len(tids), 5):
            r = xray.batch_get_traces(TraceIds=tids[i:i + 5])
            assert r.get("UnprocessedTraceIds", []) == [], r["UnprocessedTraceIds"]
            for t in r["Traces"]:
                assert t["Id"] not in out, f"trace {t['Id']} returned twice"
                docs = []
                for s in t["Segments"]:
                    doc = json.loads(s["Document"])
                    assert s["Id"] == doc["id"], (s["Id"], doc["id"])
                    docs.append(doc)
                out[t["Id"]] = docs
    finally:
        xray.close()  # an idle keep-alive connection holds up xrayd's shutdown (see DurabilityTest)
    return out


def list_trace_ids(endpoint: str, start: float, end: float, time_range_type="TraceId") -> list:
    xray = xray_client(endpoint)
    try:
        pages = xray.get_paginator("get_trace_summaries").paginate(
            StartTime=start, EndTime=end, TimeRangeType=time_range_type)
        return [s["Id"] for p in pages for s in p["TraceSummaries"]]
    finally:
        xray.close()


def compare(tc: unittest.TestCase, expected: Expected, got: dict, tids=None, skip_content=lambda tid: set()):
    """Checks the returned trees against what was sent: segments, parent links, content."""
    problems = []
    for tid in sorted(tids or expected.traces):
        want = expected.traces[tid]
        if tid not in got:
            problems.append(f"{tid}: trace missing")
            continue
        docs = got[tid]
        top = {d["id"] for d in docs}
        if top != want["segments"]:
            problems.append(f"{tid}: top-level {sorted(top)} != segments sent {sorted(want['segments'])}")
        seen_parent, seen_node = {}, {}
        for d in docs:
            if d.get("trace_id") != tid:
                problems.append(f"{tid}: segment {d['id']} has trace_id {d.get('trace_id')}")
            for node, parent in sh.walk(d):
                if node["id"] in seen_parent:
                    problems.append(f"{tid}: {node['id']} ({node.get('name')}) appears twice")
                seen_parent[node["id"]] = parent
                seen_node[node["id"]] = node
        for i, parent in want["parent"].items():
            if i not in seen_parent:
                problems.append(f"{tid}: {i} ({want['node'][i].get('name')}) missing")
            elif seen_parent[i] != parent:
                problems.append(f"{tid}: {i} ({want['node'][i].get('name')}) under {seen_parent[i]}, "
                                f"sent under {parent}")
        extra = set(seen_parent) - set(want["parent"])
        if extra:
            problems.append(f"{tid}: ids never sent: {sorted(extra)[:5]}")
        skip = skip_content(tid)
        for i, w in want["node"].items():
            g = seen_node.get(i)
            if g is None or i in skip:
                continue
            for key in ("name", "annotations", "start_time", "end_time", "in_progress", "fault", "error",
                        "throttle", "http", "user", "namespace", "sql", "origin", "parent_id"):
                if key == "parent_id" and w.get("type") == "subsegment":
                    continue  # merged subsegments may drop their own parent_id: the nesting says it
                if g.get(key) != w.get(key):
                    problems.append(f"{tid}: {i} ({w.get('name')}) {key}: got {str(g.get(key))[:120]!r}, "
                                    f"sent {str(w.get(key))[:120]!r}")
            canon = lambda v: json.dumps(v, sort_keys=True)
            if "metadata" in w and canon(g.get("metadata")) != canon(w["metadata"]):
                problems.append(f"{tid}: {i} ({w.get('name')}) metadata differs")
    if problems:
        tc.fail(f"{len(problems)} problems in {len(tids or expected.traces)} traces:\n  "
                + "\n  ".join(problems[:25]))


# --------------------------------------------------------------------------------------------
# Running the SDK clients


def run_node_client(udp_port: int) -> dict:
    node = shutil.which("node")
    if node is None:
        raise AssertionError("node is not on PATH: this test needs node 18+ (and `npm ci` in tests/e2e)")
    if not os.path.isfile(os.path.join(NODE_SDK_DIR, "package.json")):
        raise AssertionError(f"{NODE_SDK_DIR} is missing: run `npm ci` in tests/e2e (scripts/setup.sh does it)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_XRAY_")}
    env["AWS_XRAY_DAEMON_ADDRESS"] = f"127.0.0.1:{udp_port}"
    p = subprocess.run([node, NODE_CLIENT], cwd=harness.HERE, env=env, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise AssertionError(f"node_client.js exited {p.returncode}; stderr:\n{p.stderr[-3000:]}")
    lines = [l for l in p.stdout.split("\n") if l.startswith("{")]  # not splitlines(): U+2028 is in the text
    assert lines, f"node_client.js printed no report:\n{p.stderr[-2000:]}"
    return json.loads(lines[-1])


def python_sdk_available(python: str) -> bool:
    if not os.access(python, os.X_OK):
        return False
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    p = subprocess.run([python, "-c", "import aws_xray_sdk.core"], capture_output=True, timeout=30, env=env)
    return p.returncode == 0


def run_python_client(python: str, udp_port: int) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_XRAY_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    p = subprocess.run([python, PYTHON_CLIENT, f"127.0.0.1:{udp_port}"], cwd=harness.HERE, env=env,
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise AssertionError(f"python_client.py under {python} exited {p.returncode}; stderr:\n{p.stderr[-3000:]}")
    lines = [l for l in p.stdout.split("\n") if l.startswith("{")]
    assert lines, f"python_client.py under {python} printed no report:\n{p.stderr[-2000:]}"
    return json.loads(lines[-1])


def check_prerequisites():
    if boto3 is None:
        raise AssertionError(f"{sys.executable} has no boto3: this test reads the traces back with it")


# --------------------------------------------------------------------------------------------


class SdkRoundTripTest(unittest.TestCase):
    """One xrayd serve; the Node SDK and the Python SDK(s) send to it once; each test checks a part."""

    @classmethod
    def setUpClass(cls):
        check_prerequisites()
        t0 = time.monotonic()
        cls.xrayd = sh.XraydServe().start()
        try:
            cls.t_start = sh.now() - 5
            cls.node = Expected()
            report = run_node_client(cls.xrayd.udp_port)
            cls.node_version = report["sdk_version"]
            cls.node.add_datagrams(report["datagrams"])
            cls.node_datagrams = len(report["datagrams"])
            cls.python = {}
            pythons = [shutil.which("python3") or sys.executable]
            if os.path.realpath(pythons[0]) != os.path.realpath(DEBIAN_PYTHON) and python_sdk_available(DEBIAN_PYTHON):
                pythons.append(DEBIAN_PYTHON)
            for py in pythons:
                report = run_python_client(py, cls.xrayd.udp_port)
                e = Expected()
                e.add_datagrams(report["datagrams"])
                cls.python[f"{report['sdk_version']} ({py})"] = e
            everything = {}
            for e in [cls.node, *cls.python.values()]:
                for tid, ids in e.ids().items():
                    everything.setdefault(tid, set()).update(ids)
            cls.xrayd.wait_for_segments(everything, timeout=30)
            cls.t_end = sh.now() + 5
            cls.got = fetch_traces(cls.xrayd.endpoint, everything)
            cls.all_ids = everything
            print(f"\n  aws-xray-sdk-core {cls.node_version}: {cls.node_datagrams} datagrams, "
                  f"{len(cls.node.traces)} traces; aws_xray_sdk {', '.join(cls.python)}; all stored and read back "
                  f"in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        except BaseException:
            print(f"\n--- xrayd serve log ---\n{cls.xrayd.log_tail(60)}", file=sys.stderr)
            cls.xrayd.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.xrayd.cleanup()

    def test_node_sdk_traces(self):
        compare(self, self.node, self.got, skip_content=self.node.superseded_in_progress)
        by_name = {self.node.traces[tid]["node"][sid]["name"]: tid
                   for tid in self.node.traces for sid in self.node.traces[tid]["segments"]}
        streamed = self.got[by_name["e2e-node-streamed"]]
        self.assertEqual(len(streamed), 1)
        self.assertEqual(len(streamed[0]["subsegments"]), 110, "streamed subsegments merged into their segment")
        upstream = [d for tid in self.got for d in self.got[tid] if d.get("parent_id") == "53995c3f42cd8ad8"]
        self.assertEqual(len(upstream), 1, "the middleware segment keeps its upstream parent id")

    def test_python_sdk_traces(self):
        self.assertTrue(self.python)
        for label, e in self.python.items():
            with self.subTest(sdk=label):
                compare(self, e, self.got, skip_content=e.superseded_in_progress)
                streamed = [self.got[tid] for tid, t in e.traces.items()
                            if any(t["node"][s]["name"].endswith("-streamed") for s in t["segments"])]
                self.assertEqual(len(streamed), 1)
                self.assertEqual(len(streamed[0][0]["subsegments"]), 45)

    def test_summaries_list_every_trace(self):
        for trt in ("TraceId", "Event"):
            with self.subTest(time_range_type=trt):
                # Trace ids carry whole seconds: widen the window by one on each side.
                listed = list_trace_ids(self.xrayd.endpoint, self.t_start - 1, self.t_end + 1, trt)
                self.assertEqual(len(listed), len(set(listed)), "a trace listed twice")
                self.assertEqual(set(listed), set(self.all_ids))

    def test_node_in_progress_subsegment_converges(self):
        tids = [tid for tid in self.node.traces if self.node.superseded_in_progress(tid)]
        self.assertTrue(tids, "node_client.js no longer flushes an in-progress subsegment")
        compare(self, self.node, self.got, tids=tids)
        xray = xray_client(self.xrayd.endpoint)
        try:
            listed = xray.get_paginator("get_trace_summaries").paginate(StartTime=self.t_start - 1,
                                                                       EndTime=self.t_end + 1)
            partial = {s["Id"] for p in listed for s in p["TraceSummaries"] if s["IsPartial"]}
        finally:
            xray.close()
        self.assertFalse(partial & set(tids), "finished traces still IsPartial")


class DurabilityTest(sh.ServeTestCase):
    """Traces stored by one xrayd serve are served by the next one on the same data directory, after
    a clean stop (SIGTERM) and after a kill (SIGKILL) once they were visible."""

    def setUp(self):
        check_prerequisites()
        super().setUp()

    def restart(self, sig_kill: bool):
        old = self.xrayd
        if sig_kill:
            old.kill()
            self.assertEqual(old.returncode, -9)
        else:
            self.assertEqual(old.terminate(), 0, f"xrayd serve exit code after SIGTERM:\n{old.log_tail()}")
        new = sh.XraydServe(data_dir=old.data_dir)
        new.udp_port, new.tcp_port, new.api_port = old.udp_port, old.tcp_port, old.api_port
        self.servers.append(new)
        self.xrayd = new.start(keep_ports=True)

    def test_traces_survive_restart(self):
        python = shutil.which("python3") or sys.executable
        t0 = sh.now() - 5
        first = Expected()
        first.add_datagrams(run_python_client(python, self.xrayd.udp_port)["datagrams"])
        self.xrayd.wait_for_segments(first.ids(), timeout=30)
        before = fetch_traces(self.xrayd.endpoint, first.traces)
        compare(self, first, before)

        self.restart(sig_kill=False)
        after = fetch_traces(self.xrayd.endpoint, first.traces)
        self.assertEqual(after, before, "traces changed across a SIGTERM restart")
        self.assertEqual(set(list_trace_ids(self.xrayd.endpoint, t0 - 1, sh.now() + 1)), set(first.traces))

        # More traces through the restarted daemon, then a kill once they are visible.
        second = Expected()
        n = sh.now()
        docs = []
        for i in range(20):
            tid = sh.trace_id(n)
            root = sh.segment(tid, f"after-restart-{i}", annotations={"i": i})
            docs += [root, sh.subsegment(tid, root["id"], "streamed")]
        for d in docs:
            second.add(d)
        sh.send_udp(self.xrayd.udp_port, docs)
        self.xrayd.wait_for_segments(second.ids(), timeout=20)
        self.restart(sig_kill=True)
        compare(self, second, fetch_traces(self.xrayd.endpoint, second.traces))
        self.assertEqual(fetch_traces(self.xrayd.endpoint, first.traces), before)
        self.assertEqual(set(list_trace_ids(self.xrayd.endpoint, t0 - 1, sh.now() + 1)),
                         set(first.traces) | set(second.traces))
        # The restarted daemon still takes UDP on the same port.
        tid = sh.trace_id()
        seg = sh.segment(tid, "after-kill")
        sh.send_udp(self.xrayd.udp_port, [seg])
        self.xrayd.wait_for_segments({tid: [seg["id"]]})

    def test_sigterm_is_prompt_with_idle_api_connection(self):
        """boto3 (like Grafana or any SDK) keeps its connection open between calls; stopping xrayd
        should not wait for the client's keep-alive to run out."""
        xray = xray_client(self.xrayd.endpoint)
        try:
            xray.get_groups()
            t0 = time.monotonic()
            self.assertEqual(self.xrayd.terminate(), 0)
            took = time.monotonic() - t0
        finally:
            xray.close()
        self.assertLess(took, 2.0, f"SIGTERM to exit took {took:.1f} s")

    def test_sampling_rules_and_groups_survive_restart(self):
        xray = xray_client(self.xrayd.endpoint)
        xray.create_group(GroupName="kept", FilterExpression='service("a")')
        xray.create_sampling_rule(SamplingRule={
            "RuleName": "kept", "ResourceARN": "*", "Priority": 10, "FixedRate": 0.3, "ReservoirSize": 2,
            "ServiceName": "*", "ServiceType": "*", "Host": "*", "HTTPMethod": "*", "URLPath": "*", "Version": 1})
        xray.close()
        self.restart(sig_kill=False)
        xray = xray_client(self.xrayd.endpoint)
        try:
            self.assertIn("kept", [g["GroupName"] for g in xray.get_groups()["Groups"]])
            self.assertIn("kept", [r["SamplingRule"]["RuleName"]
                                   for r in xray.get_sampling_rules()["SamplingRuleRecords"]])
        finally:
            xray.close()


# The Python SDK streams closed subsegments once a segment holds more than streaming_threshold: here
# 12 direct children go out alone, then "parent" stays open while its 15 children go out alone, and
# "parent" itself arrives inside the final segment document.
NESTED_STREAMING = r"""
import json, sys, time
from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter

class Recording(UDPEmitter):
    sent = []
    def _send_data(self, data):
        self.sent.append(data)
        super()._send_data(data)
        time.sleep(0.002)

emitter = Recording(sys.argv[1])
xray_recorder.configure(sampling=False, context_missing="LOG_ERROR", daemon_address=sys.argv[1], emitter=emitter,
                        service="e2e-nested-streaming")
xray_recorder.streaming_threshold = 10
for k in range(3):
    xray_recorder.begin_segment("nested-streaming-%d" % k)
    for i in range(12):
        xray_recorder.begin_subsegment("early-%d" % i)
        xray_recorder.end_subsegment()
    xray_recorder.begin_subsegment("parent")
    for i in range(15):
        xray_recorder.begin_subsegment("child-%d" % i)
        xray_recorder.end_subsegment()
    xray_recorder.end_subsegment()
    xray_recorder.end_segment()
print(json.dumps({"datagrams": emitter.sent}))
"""


class PythonSdkNestedStreamingTest(sh.ServeTestCase):
    def test_streamed_children_of_embedded_subsegment(self):
        check_prerequisites()
        python = shutil.which("python3") or sys.executable
        p = subprocess.run([python, "-c", NESTED_STREAMING, f"127.0.0.1:{self.xrayd.udp_port}"], capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        e = Expected()
        e.add_datagrams(json.loads(p.stdout.strip().split("\n")[-1])["datagrams"])
        self.assertTrue(all(t["in_progress_alone"] == set() for t in e.traces.values()))
        streamed_under_parent = [i for t in e.traces.values() for i, par in t["parent"].items()
                                 if t["node"][i]["name"].startswith("child-") and par not in t["segments"]]
        self.assertTrue(streamed_under_parent, "the scenario no longer streams children of an embedded subsegment")
        self.xrayd.wait_for_segments(e.ids())
        compare(self, e, fetch_traces(self.xrayd.endpoint, e.traces))
        self.assert_alive()


class SamplingProxyTest(sh.ServeTestCase):
    """The SDKs' centralized sampling calls go to the daemon's TCP port (-t); xrayd serve answers
    them from its own rules, so a rule made through the API is what the SDKs see."""

    def test_sampling_calls_on_the_tcp_port(self):
        check_prerequisites()
        api = xray_client(self.xrayd.endpoint)
        proxy = xray_client(f"http://127.0.0.1:{self.xrayd.tcp_port}")
        try:
            api.create_sampling_rule(SamplingRule={
                "RuleName": "via-api", "ResourceARN": "*", "Priority": 10, "FixedRate": 0.3, "ReservoirSize": 4,
                "ServiceName": "*", "ServiceType": "*", "Host": "*", "HTTPMethod": "*", "URLPath": "*", "Version": 1})
            rules = {r["SamplingRule"]["RuleName"]: r["SamplingRule"]
                     for r in proxy.get_sampling_rules()["SamplingRuleRecords"]}
            self.assertEqual(set(rules), {"Default", "via-api"})
            self.assertEqual(rules["via-api"]["FixedRate"], 0.3)
            out = proxy.get_sampling_targets(SamplingStatisticsDocuments=[{
                "RuleName": "via-api", "ClientID": "0123456789abcdef01234567", "Timestamp": sh.now(),
                "RequestCount": 5, "SampledCount": 2, "BorrowCount": 0}])
            [target] = out["SamplingTargetDocuments"]
            self.assertEqual((target["RuleName"], target["FixedRate"]), ("via-api", 0.3))
            self.assertLessEqual(target["ReservoirQuota"], 4)
        finally:
            api.close()
            proxy.close()


if __name__ == "__main__":
    harness.main()
