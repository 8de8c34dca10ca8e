"""Centralized sampling through xrayd's TCP port, driven by the real npm aws-xray-sdk-core.

The SDK asks xrayd (TCP) for /GetSamplingRules and /SamplingTargets; xrayd signs and forwards them
to an upstream served here, which verifies the SigV4 signature with botocore and answers with two
rules: "all-for-a" (host a.example, fixed rate 1.0) and Default (fixed rate 0, reservoir 0). The
test checks the SDK applied them, that xrayd refuses other paths (no open proxy), and that every
forwarded call was signed.

    python3 tests/e2e/test_sampling_proxy.py --xrayd build/xrayd
"""
import http.server
import json
import os
import socketserver
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request

import fake_xray
import harness

HERE = os.path.dirname(os.path.abspath(__file__))


def rule(name, priority, rate, reservoir, host):
    return {"RuleName": name, "RuleARN": f"arn:aws:xray:us-west-2:123456789012:sampling-rule/{name}",
            "ResourceARN": "*", "Priority": priority, "FixedRate": rate, "ReservoirSize": reservoir,
            "ServiceName": "*", "ServiceType": "*", "Host": host, "HTTPMethod": "*", "URLPath": "*",
            "Version": 1, "Attributes": {}}


class Upstream:
    """A stand-in for the X-Ray sampling API: GetSamplingRules and SamplingTargets."""

    def __init__(self):
        self.calls = []  # (path, signature_ok, reason)
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok, why = fake_xray.verify_sigv4("POST", self.path, list(self.headers.items()), body,
                                                 access_key=fake_xray.TEST_ACCESS_KEY_ID,
                                                 secret_key=fake_xray.TEST_SECRET_ACCESS_KEY,
                                                 session_token=fake_xray.TEST_SESSION_TOKEN,
                                                 region=fake_xray.TEST_REGION)
                upstream.calls.append((self.path, ok, why))
                now = time.time()
                if self.path == "/GetSamplingRules":
                    answer = {"SamplingRuleRecords": [
                        {"SamplingRule": rule("all-for-a", 1, 1.0, 0, "a.example"), "CreatedAt": now, "ModifiedAt": now},
                        {"SamplingRule": rule("Default", 10000, 0.0, 0, "*"), "CreatedAt": now, "ModifiedAt": now}]}
                elif self.path == "/SamplingTargets":
                    req = json.loads(body or b"{}")
                    answer = {"SamplingTargetDocuments": [
                        {"RuleName": d["RuleName"], "FixedRate": 1.0 if d["RuleName"] == "all-for-a" else 0.0,
                         "ReservoirQuota": 0, "ReservoirQuotaTTL": now + 60, "Interval": 10}
                        for d in req.get("SamplingStatisticsDocuments", [])],
                        "LastRuleModification": now - 3600, "UnprocessedStatistics": []}
                else:
                    answer = {"__type": "UnknownOperationException"}
                data = json.dumps(answer).encode()
                self.send_response(200 if "__type" not in answer else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class SamplingProxyTest(unittest.TestCase):
    def setUp(self):
        self.upstream = Upstream()
        self.addCleanup(self.upstream.stop)

    def test_node_sdk_applies_rules_fetched_through_the_proxy(self):
        if not os.path.isdir(os.path.join(HERE, "node_modules", "aws-xray-sdk-core")):
            self.fail("tests/e2e/node_modules is missing: run `npm ci` in tests/e2e")
        daemon = harness.Xrayd(self.upstream.url).start()
        self.addCleanup(daemon.kill)
        env = dict(os.environ, AWS_XRAY_DAEMON_ADDRESS=f"127.0.0.1:{daemon.udp_port}")
        out = subprocess.run(["node", os.path.join(HERE, "sampling_client.js")], capture_output=True, text=True,
                             timeout=60, cwd=HERE, env=env)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        self.assertIn("all-for-a", result["rules"])
        # Fixed rate 1.0 for a.example: all sampled. Default (rate 0, reservoir 0): at most the
        # SDK's one borrowed sample per second.
        self.assertEqual(result["matched"], result["n"], result)
        self.assertLessEqual(result["fallback"], 2, result)
        paths = [p for p, _, _ in self.upstream.calls]
        self.assertIn("/GetSamplingRules", paths)
        bad = [(p, why) for p, ok, why in self.upstream.calls if not ok]
        self.assertEqual(bad, [], "forwarded calls must carry a valid SigV4 signature")

    def test_proxy_refuses_foreign_paths_and_methods(self):
        daemon = harness.Xrayd(self.upstream.url).start()
        self.addCleanup(daemon.kill)
        base = f"http://127.0.0.1:{daemon.udp_port}"
        for method, path in [("POST", "/TraceSegments"), ("POST", "/Anything"), ("GET", "/GetSamplingRules"),
                             ("POST", "/GetSamplingRules/../../etc"), ("DELETE", "/SamplingTargets")]:
            req = urllib.request.Request(base + path, data=b"{}" if method == "POST" else None, method=method)
            with self.assertRaises(urllib.error.HTTPError, msg=f"{method} {path}") as cm:
                urllib.request.urlopen(req, timeout=5)
            self.assertEqual(cm.exception.code, 404, f"{method} {path}")
        self.assertEqual(self.upstream.calls, [], "refused requests must not reach the upstream")
        # An allowed call goes through and comes back unchanged.
        req = urllib.request.Request(base + "/GetSamplingRules", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            rules = json.loads(r.read())
        self.assertEqual([x["SamplingRule"]["RuleName"] for x in rules["SamplingRuleRecords"]], ["all-for-a", "Default"])
        self.assertTrue(all(ok for _, ok, _ in self.upstream.calls))


if __name__ == "__main__":
    harness.main()
