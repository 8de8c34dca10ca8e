#!/usr/bin/env python3
"""Cross-SDK compatibility: the C++ SDK's segments against the ones the real Node.js and Python X-Ray
SDKs write for the same request.

The C++ `hello` (examples/hello), express_hello.js (the same service in Express, traced by the
official npm aws-xray-sdk-express middleware and aws-xray-sdk-core's captureHTTPsGlobal, versions
pinned in package.json) and flask_hello.py (the same service in Flask, as in the project's reference
article, traced by aws_xray_sdk's XRayMiddleware and its patch of `requests`, from this python3) each
get the same request: GET / with an X-Amzn-Trace-Id carrying Root,
Parent and Sampled=1, a User-Agent and an X-Forwarded-For. A UDP socket in this test stands in for
the daemon and takes what each sends: the front segment (with the "remote" subsegment of its call
to /downstream) and the /downstream segment.

Then, per document (segment, remote subsegment, downstream segment), C++ against Node and C++
against Python:
  * shape: every key path (objects nested, arrays as "[]") and its JSON type must be the same in
    both, except the differences listed in ALLOWED (Node) and ALLOWED_PYTHON, each with its reason.
    A difference not listed fails, and so does a listed one that no longer occurs (the lists stay
    exact).
  * values both must get right: trace_id = Root sent, parent_id = Parent sent, the http request
    (method, url, user_agent, client_ip from X-Forwarded-For with x_forwarded_for) and response
    (status, content_length = what the client received), namespace "remote" and the called URL on
    the subsegment, the downstream segment under the subsegment (with the few SDK-specific values
    spelled out in test_node_values / test_python_values).
Finally all three sets of datagrams, byte for byte, go to a real `xrayd serve`, and BatchGetTraces
(boto3) gives each document back unchanged.

    python3 tests/e2e/test_sdk_cross.py --xrayd build/xrayd --hello build/examples/hello/hello [-v]

Needs node with tests/e2e/node_modules (`npm ci`), and aws_xray_sdk 2.x, flask, requests and boto3
for this python3: without them this test FAILS.
"""

import json
import os
import socket
import tempfile
import time
import unittest

import harness
import sdk_apps
import serve_harness as sh

try:
    import boto3
    import botocore.config
except ImportError:  # reported by the test that needs it
    boto3 = None

SERVICE = "hello-cross"
USER_AGENT = "xrayd-cross-sdk-test/1.0"
CLIENT_IP = "203.0.113.7"
FORWARDED_FOR = f"{CLIENT_IP}, 10.1.2.3"
DOWNSTREAM_BODY = "downstream ok\n"

# Differences in shape that are legitimate: (document, key path, C++ type, Node type, why), a type
# of None meaning the key is absent on that side. Documents: "segment" (GET /), "subsegment" (its
# remote subsegment), "downstream" (the GET /downstream segment).
ALLOWED = [
    # Each SDK describes its own runtime. The Node SDK always writes service {runtime: "node",
    # runtime_version, name and version from npm_package_* ("unknown" outside npm)}; the C++ SDK
    # writes "service" only for RecorderConfig::service_version (hello sets none). The X-Ray docs
    # make all of "service" optional.
    *[(doc, path, None, t, "Node-specific service data (runtime, runtime_version, npm package name/version)")
      for doc in ("segment", "downstream")
      for path, t in (("service", "object"), ("service.runtime", "string"), ("service.runtime_version", "string"),
                      ("service.name", "string"), ("service.version", "string"))],
    # Both write aws.xray.sdk and sdk_version; only the Node SDK names its npm package besides.
    *[(doc, "aws.xray.package", None, "string", "the npm package name (Node SDK only)")
      for doc in ("segment", "downstream")],
    # The Node middleware reads the response's Content-Length from res.headers, which an
    # http.ServerResponse does not have, so its segments never carry it; the docs list
    # http.response.content_length for segments and the C++ SDK (like the Python and Java SDKs) sends it.
    *[(doc, "http.response.content_length", "number", None, "the Node middleware cannot see the response length")
      for doc in ("segment", "downstream")],
    # The docs put "traced" (the callee is traced too) in http.request of the subsegment, where the
    # C++ SDK writes it; aws-xray-sdk-node moves it to the subsegment's top level (its
    # addRemoteRequestData; discussed in aws/aws-xray-sdk-node issue 493).
    ("subsegment", "http.request.traced", "boolean", None, "C++ follows the segment-document docs"),
    ("subsegment", "traced", None, "boolean", "aws-xray-sdk-node's placement of http.request.traced"),
    # The client (libcurl / captured http in /, which the downstream segment records) sends no
    # User-Agent: the Node middleware writes "" then, the C++ SDK leaves the empty field out.
    ("downstream", "http.request.user_agent", None, "string", "empty user_agent left out by C++"),
]


# The same for the Python SDK (aws_xray_sdk 2.x: XRayMiddleware for Flask, its patch of `requests`):
# (document, key path, C++ type, Python type, why).
ALLOWED_PYTHON = [
    # Each SDK describes its own runtime: aws_xray_sdk always writes service {runtime: "CPython",
    # runtime_version}; the C++ SDK writes "service" only for RecorderConfig::service_version. All of
    # "service" is optional in the X-Ray docs.
    *[(doc, path, None, t, "Python-specific service data (runtime, runtime_version)")
      for doc in ("segment", "downstream")
      for path, t in (("service", "object"), ("service.runtime", "string"), ("service.runtime_version", "string"))],
    # aws_xray_sdk serializes its Entity's in_progress flag always, false once the entity is closed;
    # the docs make in_progress optional ("true" for an unfinished segment), and the C++ SDK sends only
    # completed documents, so it leaves it out (as the Node SDK does).
    *[(doc, "in_progress", None, "boolean", "aws_xray_sdk writes in_progress: false on closed entities")
      for doc in ("segment", "subsegment", "downstream")],
    # aws_xray_sdk serializes an embedded subsegment like a standalone one, with trace_id, parent_id
    # and type "subsegment". The docs require those only of subsegments sent on their own; inside its
    # segment they are implied (the C++ and Node SDKs leave them out). Their values are checked.
    ("subsegment", "trace_id", None, "string", "aws_xray_sdk repeats the trace id in embedded subsegments"),
    ("subsegment", "parent_id", None, "string", "aws_xray_sdk repeats the parent id in embedded subsegments"),
    ("subsegment", "type", None, "string", "aws_xray_sdk repeats type in embedded subsegments"),
    # aws_xray_sdk's requests patch (ext/requests/patch.py, requests_processor) records method, url
    # and status only: no http.request.traced (documented for subsegments calling a traced service)
    # and no http.response.content_length (documented for responses); the C++ SDK sends both.
    ("subsegment", "http.request.traced", "boolean", None, "the Python requests patch does not write traced"),
    ("subsegment", "http.response.content_length", "number", None,
     "the Python requests patch records no response length"),
    # The call to /downstream: `requests` sends User-Agent python-requests/<version>, which the
    # downstream segment records; libcurl in hello sends none, and the C++ SDK leaves the field out.
    ("downstream", "http.request.user_agent", None, "string", "requests sends a User-Agent, hello's libcurl none"),
]


def json_type(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    raise TypeError(type(v))


def shape(doc: dict, prefix: str = "", out=None, top=True) -> dict:
    """{key path: JSON type} for a document; array elements share the path "<array>[]" (their types
    merged as "a|b" when they differ). A segment's "subsegments" are compared on their own."""
    out = {} if out is None else out

    def put(path, value):
        t = json_type(value)
        if path in out and t not in out[path].split("|"):
            out[path] = "|".join(sorted(out[path].split("|") + [t]))
        else:
            out.setdefault(path, t)
        if isinstance(value, dict):
            shape(value, path + ".", out, top=False)
        elif isinstance(value, list):
            for element in value:
                put(path + "[]", element)

    for key, value in doc.items():
        path = prefix + key
        if top and key == "subsegments":
            out[path] = json_type(value)
            continue
        put(path, value)
    return out


def shape_differences(name: str, cpp: dict, other: dict) -> list:
    a, b = shape(cpp), shape(other)
    return [(name, p, a.get(p), b.get(p)) for p in sorted(set(a) | set(b)) if a.get(p) != b.get(p)]


def parse_datagram(data: bytes) -> dict:
    header, sep, body = data.partition(b"\n")
    assert sep, f"no header line: {data[:80]!r}"
    assert json.loads(header) == {"format": "json", "version": 1}, header
    return json.loads(body)


class Run:
    """One service answering the test request: what the client got and what the SDK sent."""

    def __init__(self, kind, root, parent, port, status, body, headers, datagrams):
        self.kind, self.root, self.parent, self.port = kind, root, parent, port
        self.status, self.body, self.headers = status, body, headers
        self.datagrams = datagrams
        docs = [parse_datagram(d) for d in datagrams]
        fronts = [d for d in docs if d.get("parent_id") == parent and d.get("type") != "subsegment"]
        assert len(fronts) == 1, f"{kind}: {len(fronts)} segments under the Parent sent in {docs}"
        self.segment = fronts[0]
        remotes = [s for s in self.segment.get("subsegments", []) if s.get("namespace") == "remote"]
        assert len(remotes) == 1, f"{kind}: {len(remotes)} remote subsegments in {self.segment}"
        self.subsegment = remotes[0]
        downs = [d for d in docs if d.get("parent_id") == self.subsegment["id"]]
        assert len(downs) == 1, f"{kind}: {len(downs)} segments under the remote subsegment in {docs}"
        self.downstream = downs[0]
        assert len(docs) == 2, f"{kind}: expected 2 documents, got {len(docs)}: {docs}"


def run_service(kind: str, command: list, extra_env: dict, udp: socket.socket, workdir: str) -> Run:
    port = harness.free_tcp_port()
    closed_tcp = harness.free_tcp_port()  # nobody answers there: no centralized sampling either way
    env = sdk_apps.base_env(port, SERVICE, f"tcp:127.0.0.1:{closed_tcp} udp:127.0.0.1:{udp.getsockname()[1]}")
    env.update(extra_env)
    app = sdk_apps.App(command, env, port, os.path.join(workdir, f"{kind}.log"))
    try:
        root, parent = sh.trace_id(), sh.new_id()
        status, body, headers = app.get("/", {
            sdk_apps.TRACE_HEADER: f"Root={root};Parent={parent};Sampled=1",
            "User-Agent": USER_AGENT, "X-Forwarded-For": FORWARDED_FOR})
        datagrams = []
        udp.settimeout(10)
        try:
            while len(datagrams) < 2:
                datagrams.append(udp.recvfrom(65536)[0])
            udp.settimeout(0.5)  # anything more for this request?
            while True:
                datagrams.append(udp.recvfrom(65536)[0])
        except socket.timeout:
            pass
        if len(datagrams) < 2:
            raise AssertionError(f"{kind}: {len(datagrams)} datagrams within 10 s:\n{app.log()}")
        code = app.stop()
        if code != 0:
            raise AssertionError(f"{kind} exited with {code} on SIGTERM:\n{app.log()}")
        return Run(kind, root, parent, port, status, body, headers, datagrams)
    finally:
        app.kill()


class CrossSdkTest(unittest.TestCase):
    runs: dict = {}

    @classmethod
    def setUpClass(cls):
        node = sdk_apps.node_command()
        python = sdk_apps.python_command()
        cls.workdir = tempfile.mkdtemp(prefix="xrayd-cross-sdk-")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            cls.runs = {
                "cpp": run_service("cpp", [sdk_apps.HELLO_BIN], {"XRAY_CENTRALIZED_SAMPLING": "false"}, udp, cls.workdir),
                "node": run_service("node", node, {"XRAY_CENTRALIZED_SAMPLING": "false"}, udp, cls.workdir),
                "python": run_service("python", python, {"XRAY_CENTRALIZED_SAMPLING": "false"}, udp, cls.workdir),
            }

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def compare_shapes(self, kind: str, label: str, allowed_list: list, subsegment_paths: tuple):
        cpp, other = self.runs["cpp"], self.runs[kind]
        found = []
        for name in ("segment", "subsegment", "downstream"):
            found += shape_differences(name, getattr(cpp, name), getattr(other, name))
        allowed = {(d, p, a, b): why for d, p, a, b, why in allowed_list}
        self.assertEqual(len(allowed), len(allowed_list), "duplicate entries in the allowlist")
        unexpected = [f"{d} {p}: C++ {a or 'absent'}, {label} {b or 'absent'}" for d, p, a, b in found
                      if (d, p, a, b) not in allowed]
        stale = [f"{d} {p}: C++ {a or 'absent'}, {label} {b or 'absent'} ({why})"
                 for (d, p, a, b), why in allowed.items() if (d, p, a, b) not in found]
        w = len(label) + 1
        detail = (f"\n{'C++':<{w}} segment:    {json.dumps(cpp.segment, sort_keys=True)}"
                  f"\n{label:<{w}} segment:    {json.dumps(other.segment, sort_keys=True)}"
                  f"\n{'C++':<{w}} downstream: {json.dumps(cpp.downstream, sort_keys=True)}"
                  f"\n{label:<{w}} downstream: {json.dumps(other.downstream, sort_keys=True)}")
        self.assertEqual(unexpected, [], f"shape differences C++/{label} not in the allowlist" + detail)
        self.assertEqual(stale, [], "the allowlist lists differences that no longer occur: remove them" + detail)
        # The comparison is not vacuous: the shared shape holds what a traced HTTP call needs.
        shared = set(shape(cpp.segment)) & set(shape(other.segment))
        for path in ("trace_id", "id", "parent_id", "name", "start_time", "end_time", "subsegments",
                     "aws.xray.sdk", "aws.xray.sdk_version", "http.request.method", "http.request.url",
                     "http.request.user_agent", "http.request.client_ip", "http.request.x_forwarded_for",
                     "http.response.status"):
            self.assertIn(path, shared)
        shared = set(shape(cpp.subsegment)) & set(shape(other.subsegment))
        for path in ("id", "name", "start_time", "end_time", "namespace", "http.request.method",
                     "http.request.url", "http.response.status") + subsegment_paths:
            self.assertIn(path, shared)
        shared = set(shape(cpp.downstream)) & set(shape(other.downstream))
        for path in ("trace_id", "id", "parent_id", "name", "start_time", "end_time", "http.request.method",
                     "http.request.url", "http.response.status"):
            self.assertIn(path, shared)

    def test_shapes_match_except_allowed(self):
        self.compare_shapes("node", "Node", ALLOWED, ("http.response.content_length",))

    def test_python_shapes_match_except_allowed(self):
        # aws_xray_sdk's requests patch records no response length (see ALLOWED_PYTHON).
        self.compare_shapes("python", "Python", ALLOWED_PYTHON, ())

    def check_values(self, run: Run):
        seg, sub, down = run.segment, run.subsegment, run.downstream
        # The Python SDK's own ways, each also pinned in test_python_values and ALLOWED_PYTHON.
        py = run.kind == "python"
        self.assertEqual(run.status, 200)
        self.assertEqual(run.body, f"Hello, X-Ray! Trace ID: {run.root}\n")

        self.assertEqual(seg["name"], SERVICE)
        self.assertEqual(seg["trace_id"], run.root)
        self.assertEqual(seg["parent_id"], run.parent)
        self.assertRegex(seg["id"], r"^[0-9a-f]{16}$")
        self.assertNotIn("type", seg)
        self.assertLessEqual(seg["start_time"], seg["end_time"])
        self.assertLess(abs(seg["start_time"] - time.time()), 60)
        req = seg["http"]["request"]
        self.assertEqual(req["method"], "GET")
        self.assertEqual(req["url"], f"http://127.0.0.1:{run.port}/")
        self.assertEqual(req["user_agent"], USER_AGENT)
        # aws_xray_sdk's middlewares copy X-Forwarded-For whole; the others take its first address.
        self.assertEqual(req["client_ip"], FORWARDED_FOR if py else CLIENT_IP)
        self.assertIs(req["x_forwarded_for"], True)
        resp = seg["http"]["response"]
        self.assertIs(type(resp["status"]), int)
        self.assertEqual(resp["status"], 200)
        if "content_length" in resp:  # absent from Node's (see ALLOWED)
            self.assertIs(type(resp["content_length"]), int)
            self.assertEqual(resp["content_length"], int(run.headers["Content-Length"]))
            self.assertEqual(resp["content_length"], len(run.body.encode()))
        for flag in ("error", "fault", "throttle"):
            self.assertNotIn(flag, seg)
        for doc in (seg, sub, down):  # aws_xray_sdk always writes in_progress, false once closed
            if py:
                self.assertIs(doc["in_progress"], False)
            else:
                self.assertNotIn("in_progress", doc)
        self.assertIsInstance(seg["aws"]["xray"]["sdk"], str)
        self.assertIsInstance(seg["aws"]["xray"]["sdk_version"], str)

        self.assertEqual(sub["namespace"], "remote")
        self.assertRegex(sub["id"], r"^[0-9a-f]{16}$")
        if py:  # aws_xray_sdk repeats the ids and type in the embedded subsegment: they must be right
            self.assertEqual((sub["trace_id"], sub["parent_id"], sub["type"]), (run.root, seg["id"], "subsegment"))
        else:
            for key in ("trace_id", "parent_id", "type"):
                self.assertNotIn(key, sub)  # embedded: the segment carries them
        # aws_xray_sdk's requests patch writes the method as the caller spelled it (requests.get: "get").
        self.assertEqual(sub["http"]["request"]["method"], "get" if py else "GET")
        self.assertEqual(sub["http"]["response"]["status"], 200)
        if py:  # aws_xray_sdk's requests patch records no response length
            self.assertNotIn("content_length", sub["http"]["response"])
        else:
            self.assertEqual(sub["http"]["response"]["content_length"], len(DOWNSTREAM_BODY))
        self.assertLessEqual(sub["start_time"], sub["end_time"])
        # Node's times are in milliseconds: allow that much around the segment's bounds.
        self.assertGreaterEqual(sub["start_time"], seg["start_time"] - 0.002)
        self.assertLessEqual(sub["end_time"], seg["end_time"] + 0.002)

        self.assertEqual(down["name"], SERVICE + "-downstream")
        self.assertEqual(down["trace_id"], run.root)
        self.assertEqual(down["parent_id"], sub["id"])
        self.assertEqual(down["http"]["request"]["url"], f"http://127.0.0.1:{run.port}/downstream")
        self.assertEqual(down["http"]["request"]["method"], "GET")
        self.assertEqual(down["http"]["response"]["status"], 200)
        if "content_length" in down["http"]["response"]:  # absent from Node's (see ALLOWED)
            self.assertEqual(down["http"]["response"]["content_length"], len(DOWNSTREAM_BODY))
        self.assertLessEqual(down["start_time"], down["end_time"])
        # The downstream ran inside the call (sub-millisecond slack for Node's millisecond clock).
        self.assertGreaterEqual(down["start_time"], sub["start_time"] - 0.002)
        self.assertLessEqual(down["end_time"], sub["end_time"] + 0.002)
        self.assertEqual(len({seg["id"], sub["id"], down["id"]}), 3)

    def test_cpp_values(self):
        run = self.runs["cpp"]
        self.check_values(run)
        self.assertEqual(run.segment["aws"]["xray"]["sdk"], "X-Ray for C++")
        self.assertEqual(run.subsegment["name"], "downstream")  # hello names the call
        self.assertEqual(run.subsegment["http"]["request"]["url"], f"http://127.0.0.1:{run.port}/downstream")
        self.assertIs(run.subsegment["http"]["request"]["traced"], True)
        # hello always answers with the trace id (as the Java SDK's servlet filter does).
        self.assertEqual(run.headers.get(sdk_apps.TRACE_HEADER), f"Root={run.root}")

    def test_node_values(self):
        run = self.runs["node"]
        self.check_values(run)
        self.assertEqual(run.segment["aws"]["xray"]["sdk"], "X-Ray for Node.js")
        self.assertEqual(run.subsegment["name"], "127.0.0.1")  # captureHTTPs names it after the host
        # aws-xray-sdk-node builds the URL from the request's host without its port.
        self.assertEqual(run.subsegment["http"]["request"]["url"], "http://127.0.0.1/downstream")
        self.assertIs(run.subsegment["traced"], True)
        # The Node middleware answers with a trace header only when asked for a decision (Sampled=?).
        self.assertIsNone(run.headers.get(sdk_apps.TRACE_HEADER))

    def test_python_values(self):
        run = self.runs["python"]
        self.check_values(run)
        self.assertEqual(run.segment["aws"]["xray"]["sdk"], "X-Ray for Python")
        self.assertTrue(run.segment["aws"]["xray"]["sdk_version"].startswith("2."))
        self.assertEqual(run.segment["service"]["runtime"], "CPython")
        self.assertEqual(run.subsegment["name"], "127.0.0.1")  # the requests patch names it after the host
        self.assertEqual(run.subsegment["http"]["request"]["url"], f"http://127.0.0.1:{run.port}/downstream")
        self.assertNotIn("traced", run.subsegment["http"]["request"])
        self.assertTrue(run.downstream["http"]["request"]["user_agent"].startswith("python-requests/"))
        # XRayMiddleware answers with the trace id, as hello does.
        self.assertEqual(run.headers.get(sdk_apps.TRACE_HEADER), f"Root={run.root}")

    def test_all_accepted_by_xrayd_serve(self):
        if boto3 is None:
            self.fail("boto3 is missing for this python3: the traces are read back with it")
        self.assertEqual(set(self.runs), {"cpp", "node", "python"})
        xrayd = sh.XraydServe().start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for run in self.runs.values():
                    for d in run.datagrams:  # exactly the bytes each SDK sent
                        s.sendto(d, ("127.0.0.1", xrayd.udp_port))
            want = {run.root: [run.segment["id"], run.subsegment["id"], run.downstream["id"]]
                    for run in self.runs.values()}
            xrayd.wait_for_segments(want)
            client = boto3.client(
                "xray", endpoint_url=xrayd.endpoint, region_name=sh.REGION,
                aws_access_key_id=sh.DUMMY_ACCESS_KEY_ID, aws_secret_access_key=sh.DUMMY_SECRET_ACCESS_KEY,
                config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))
            try:
                out = client.batch_get_traces(TraceIds=sorted(want))
            finally:
                client.close()
            self.assertEqual(out.get("UnprocessedTraceIds", []), [])
            traces = {t["Id"]: t for t in out["Traces"]}
            self.assertEqual(set(traces), set(want))
            for kind, run in self.runs.items():
                with self.subTest(kind):
                    stored = {s["Id"]: json.loads(s["Document"]) for s in traces[run.root]["Segments"]}
                    self.assertEqual(set(stored), {run.segment["id"], run.downstream["id"]})
                    # Each document comes back as sent (the subsegment inside its segment).
                    self.assertEqual(stored[run.segment["id"]], run.segment)
                    self.assertEqual(stored[run.downstream["id"]], run.downstream)
                    self.assertGreater(traces[run.root]["Duration"], 0)
            self.assertTrue(xrayd.alive(), xrayd.log_tail())
        finally:
            xrayd.cleanup()


if __name__ == "__main__":
    sdk_apps.main()
