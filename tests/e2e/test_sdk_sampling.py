#!/usr/bin/env python3
"""The C++ SDK's centralized sampling end to end: `xrayd serve` holds the sampling rules (created with
boto3), the C++ `hello` example (examples/hello, the SDK's default CentralizedSampler) fetches them
through xrayd's TCP port — in serve mode that sampling proxy forwards to xrayd's own X-Ray API — and
sends its segments over UDP; the traces and the statistics it reported are read back.

Between hello and xrayd's TCP port sits a small recording relay (plain HTTP, forwarding each call
unchanged), so the test sees exactly what the SDK sent and what xrayd answered.

Rules: "health-never" (URLPath /health, FixedRate 0, ReservoirSize 0) and "root-all" (URLPath /,
FixedRate 1, ReservoirSize 10). Expected: every GET / trace stored, no GET /health trace stored; the
SDK's SamplingTargets statistics count every request (health: 20 requests, 0 sampled, 0 borrowed;
root: 20 requests, 20 sampled) with one 24-hex ClientID; and xrayd counted that client: a second
client asking boto3's GetSamplingTargets for root-all gets half its reservoir.

    python3 tests/e2e/test_sdk_sampling.py --xrayd build/xrayd --hello build/examples/hello/hello [-v]

Needs boto3 for `python3`; without it this test FAILS.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
import sdk_apps
import serve_harness as sh

try:
    import boto3
    import botocore.config
except ImportError:  # reported by the test, not at import time
    boto3 = None

N = 20  # requests per path


class RecordingRelay:
    """POSTs on a free loopback port forwarded to 127.0.0.1:target_port unchanged; every call is
    recorded as (path, request JSON, status, answer JSON)."""

    def __init__(self, target_port: int):
        self.calls = []
        self.lock = threading.Lock()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                req = urllib.request.Request(f"http://127.0.0.1:{target_port}{self.path}", data=body,
                                             method="POST", headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=5) as r:
                        status, answer = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, answer = e.code, e.read()
                except OSError as e:
                    status, answer = 502, json.dumps({"relay": str(e)}).encode()
                with relay.lock:
                    relay.calls.append((self.path, _json(body), status, _json(answer)))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def recorded(self, path: str):
        with self.lock:
            return [c for c in self.calls if c[0] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _json(data: bytes):
    try:
        return json.loads(data or b"{}")
    except ValueError:
        return {"unparsed": data[:200].decode("utf-8", "replace")}


def wait_for(what: str, check, timeout: float, detail=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s. {detail()}")
        time.sleep(0.1)


class SdkCentralizedSampling(sh.ServeTestCase):
    def setUp(self):
        if boto3 is None:
            self.fail(f"{sys.executable} has no boto3: this test creates the rules with it")
        super().setUp()
        self.xray = boto3.client(
            "xray", endpoint_url=self.xrayd.endpoint, region_name=sh.REGION,
            aws_access_key_id=sh.DUMMY_ACCESS_KEY_ID, aws_secret_access_key=sh.DUMMY_SECRET_ACCESS_KEY,
            config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))
        self.relay = RecordingRelay(self.xrayd.tcp_port)
        self.addCleanup(self.relay.close)
        self.hello = None
        self.hello_log = os.path.join(self.xrayd.dir, "hello.log")

    def tearDown(self):
        if self.hello is not None and self.hello.poll() is None:
            self.hello.kill()
            self.hello.wait()
        if self._outcome_failed() and os.path.exists(self.hello_log):
            with open(self.hello_log, encoding="utf-8", errors="replace") as f:
                print("\n--- hello log ---\n" + f.read()[-4000:], file=sys.stderr)
        super().tearDown()

    def create_rule(self, name, priority, rate, reservoir, path):
        self.xray.create_sampling_rule(SamplingRule={
            "RuleName": name, "ResourceARN": "*", "Priority": priority, "FixedRate": rate,
            "ReservoirSize": reservoir, "ServiceName": "*", "ServiceType": "*", "Host": "*",
            "HTTPMethod": "*", "URLPath": path, "Version": 1})

    def start_hello(self) -> int:
        port = harness.free_ports(socket.SOCK_STREAM)[0]
        env = dict(os.environ, PORT=str(port), XRAY_SERVICE_NAME="hello-sampling",
                   AWS_XRAY_DAEMON_ADDRESS=f"tcp:127.0.0.1:{self.relay.port} udp:127.0.0.1:{self.xrayd.udp_port}")
        for k in ("AWS_XRAY_TRACING_NAME", "XRAY_SAMPLING_RULES_FILE", "XRAY_CENTRALIZED_SAMPLING"):
            env.pop(k, None)
        with open(self.hello_log, "wb") as log:
            self.hello = subprocess.Popen([sdk_apps.HELLO_BIN], env=env, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL)

        def listening():
            if self.hello.poll() is not None:
                raise AssertionError(f"hello exited with {self.hello.returncode}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/downstream", timeout=1).read()
                return True
            except OSError:
                return False

        wait_for("hello listening", listening, 10)
        return port

    def traces_present(self, trace_ids) -> set:
        present = set()
        ids = list(trace_ids)
        for i in range(0, len(ids), 5):
            out = self.xray.batch_get_traces(TraceIds=ids[i:i + 5])
            present |= {t["Id"] for t in out["Traces"] if t.get("Segments")}
        return present

    def test_rules_from_xrayd_decide_and_statistics_reach_it(self):
        self.create_rule("health-never", 1, 0.0, 0, "/health")
        self.create_rule("root-all", 2, 1.0, 10, "/")
        port = self.start_hello()

        # The SDK fetched the rules through the TCP port (the relay saw xrayd's answer).
        def rules_fetched():
            for _, _, status, answer in self.relay.recorded("/GetSamplingRules"):
                names = {r["SamplingRule"]["RuleName"] for r in answer.get("SamplingRuleRecords", [])}
                if status == 200 and {"health-never", "root-all", "Default"} <= names:
                    return True
            return False

        wait_for("GetSamplingRules through xrayd's TCP port", rules_fetched, 10,
                 lambda: f"relay saw {self.relay.calls}")
        self.assertEqual(self.relay.recorded("/GetSamplingRules")[0][1], {}, "GetSamplingRules body")

        root_traces, health_traces = [], []
        for _ in range(N):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                body = r.read().decode()
            m = re.search(r"Trace ID: (1-[0-9a-f]{8}-[0-9a-f]{24})", body)
            self.assertIsNotNone(m, body)
            root_traces.append(m.group(1))
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                self.assertEqual(r.read(), b"ok\n")
                m = re.match(r"Root=(1-[0-9a-f]{8}-[0-9a-f]{24})", r.headers.get("X-Amzn-Trace-Id", ""))
            self.assertIsNotNone(m, "hello answers /health with its trace id")
            health_traces.append(m.group(1))

        # Every / trace is stored (FixedRate 1); then, with the same UDP stream drained, no /health one.
        wait_for("all GET / traces stored", lambda: self.traces_present(root_traces) == set(root_traces), 15,
                 lambda: f"missing {set(root_traces) - self.traces_present(root_traces)}")
        time.sleep(1.5)
        self.assertEqual(self.traces_present(health_traces), set(), "health-never (FixedRate 0) must not sample")

        # The statistics: every decision counted, reported within about 10 s, summed over reports.
        def totals():
            sums, clients = {}, set()
            for _, body, status, answer in self.relay.recorded("/SamplingTargets"):
                self.assertEqual(status, 200, answer)
                for d in body.get("SamplingStatisticsDocuments", []):
                    s = sums.setdefault(d["RuleName"], {"RequestCount": 0, "SampledCount": 0, "BorrowCount": 0})
                    for k in s:
                        s[k] += d[k]
                    clients.add(d["ClientID"])
                    self.assertLess(abs(d["Timestamp"] - time.time()), 120, d)
            return sums, clients

        wait_for("statistics for both rules reported",
                 lambda: all(totals()[0].get(r, {}).get("RequestCount", 0) >= N for r in ("health-never", "root-all")),
                 30, lambda: f"relay saw {self.relay.recorded('/SamplingTargets')}")
        # Right after the report, xrayd knows this client for root-all: a second client's share of its
        # reservoir (10 per second) is half.
        other = self.xray.get_sampling_targets(SamplingStatisticsDocuments=[{
            "RuleName": "root-all", "ClientID": "0" * 24, "Timestamp": time.time(),
            "RequestCount": 0, "SampledCount": 0, "BorrowCount": 0}])
        self.assertEqual([(t["RuleName"], t.get("ReservoirQuota")) for t in other["SamplingTargetDocuments"]],
                         [("root-all", 5)], other)

        sums, clients = totals()
        self.assertEqual(sums["health-never"], {"RequestCount": N, "SampledCount": 0, "BorrowCount": 0})
        self.assertEqual(sums["root-all"]["RequestCount"], N)
        self.assertEqual(sums["root-all"]["SampledCount"], N)
        self.assertEqual(len(clients), 1, clients)
        self.assertRegex(clients.pop(), r"^[0-9a-f]{24}$")
        # xrayd answered with targets for the rules reported.
        answered = {t["RuleName"] for _, _, _, a in self.relay.recorded("/SamplingTargets")
                    for t in a.get("SamplingTargetDocuments", [])}
        self.assertLessEqual({"health-never", "root-all"}, answered)

        # The poller waits for its next 5-minute rules fetch: SIGTERM must still stop hello at once.
        t0 = time.monotonic()
        self.hello.send_signal(signal.SIGTERM)
        self.assertEqual(self.hello.wait(timeout=10), 0)
        self.assertLess(time.monotonic() - t0, 5)
        with open(self.hello_log, encoding="utf-8", errors="replace") as f:
            self.assertIn("centralized sampling: 3 rule(s) from 127.0.0.1:", f.read())


if __name__ == "__main__":
    sdk_apps.main()  # takes --hello PATH, then runs the tests
