#!/usr/bin/env python3
"""The real AWS X-Ray SDK for Node.js (aws-xray-sdk-core, pinned in package.json) → xrayd → a fake
X-Ray API that verifies every SigV4 signature.

node_client.js creates segments with subsegments, annotations, metadata, HTTP data (captured
outgoing calls and a middleware-traced incoming request), errors and causes, in-progress and
streamed subsegments, escaping-heavy text and a ~50 KB document, and reports the exact datagrams
the SDK sent. Every one of those documents must reach the fake byte for byte.

Needs tests/e2e/node_modules (`npm ci` in tests/e2e): without it this test FAILS, it does not skip.

    python3 tests/e2e/test_sdk_node.py --xrayd build/xrayd
"""

import json
import os
import shutil
import subprocess

import harness
from harness import XraydTestCase

NODE_CLIENT = os.path.join(harness.HERE, "node_client.js")
SDK_DIR = os.path.join(harness.HERE, "node_modules", "aws-xray-sdk-core")


class NodeSdkTest(XraydTestCase):
    def run_node_client(self, udp_port: int) -> dict:
        node = shutil.which("node")
        if node is None:
            self.fail("node is not on PATH: the Node.js SDK test needs node 18+ (and `npm ci` in tests/e2e)")
        if not os.path.isfile(os.path.join(SDK_DIR, "package.json")):
            self.fail(f"{SDK_DIR} is missing: run `npm ci` in tests/e2e before the e2e tests "
                      f"(scripts/setup.sh does it)")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_XRAY_")}
        env["AWS_XRAY_DAEMON_ADDRESS"] = f"127.0.0.1:{udp_port}"
        try:
            p = subprocess.run([node, NODE_CLIENT], cwd=harness.HERE, env=env, capture_output=True, text=True,
                               timeout=60, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            self.fail(f"node_client.js did not finish in 60 s; stderr:\n{e.stderr}")
        if p.returncode != 0:
            self.fail(f"node_client.js exited {p.returncode}; stderr:\n{p.stderr[-3000:]}")
        lines = [l for l in p.stdout.split("\n") if l.startswith("{")]  # not splitlines(): U+2028 is in the text
        self.assertTrue(lines, f"node_client.js printed no report; stdout:\n{p.stdout[-2000:]}\nstderr:\n{p.stderr[-2000:]}")
        report = json.loads(lines[-1])
        self.assertTrue(report["sdk_version"].startswith("3."), report["sdk_version"])
        return report

    def test_node_sdk_documents_arrive_intact(self):
        daemon = self.start_xrayd()
        report = self.run_node_client(daemon.udp_port)
        docs = harness.assert_sdk_documents_delivered(self, daemon, report["datagrams"])
        print(f"  aws-xray-sdk-core {report['sdk_version']}: {len(docs)} documents, "
              f"{len(self.fake.trace_requests())} requests, all signatures verified")

        # The client did exercise what it claims (so "intact" covers all of it).
        by_name = {}
        for d in docs:
            by_name.setdefault(d["name"], []).append(d)

        annotated = by_name["e2e-node-annotated"][0]
        self.assertEqual(annotated["annotations"]["customer_id"], "c-12345")
        self.assertEqual(annotated["annotations"]["order_total"], 99.5)
        self.assertIs(annotated["annotations"]["is_premium"], True)
        self.assertIn("\u2028", annotated["annotations"]["tricky"])
        self.assertIn("😀", annotated["annotations"]["tricky"])
        self.assertIn("\x00", annotated["metadata"]["default"]["tricky"])
        self.assertEqual(annotated["metadata"]["my-namespace"]["config"]["flags"], ["a", "b"])
        self.assertEqual(annotated["user"], "alice@example.com")

        nested = by_name["e2e-node-nested"][0]
        level3 = nested["subsegments"][0]["subsegments"][0]["subsegments"][0]
        self.assertEqual(level3["name"], "level-3")
        self.assertEqual(level3["sql"]["url"], "postgresql://db:5432/orders")

        errors = by_name["e2e-node-errors"][0]
        self.assertTrue(errors["fault"])
        subs = {s["name"]: s for s in errors["subsegments"]}
        exc = subs["throws-error"]["cause"]["exceptions"][0]
        self.assertEqual(exc["type"], "PaymentDeclinedError")
        self.assertTrue(exc["stack"])
        self.assertTrue(subs["remote-error"]["throttle"])
        self.assertTrue(subs["remote-error"]["cause"]["exceptions"][0]["remote"])

        client = by_name["e2e-node-http-client"][0]
        statuses = [s.get("http", {}).get("response", {}).get("status") for s in client["subsegments"]]
        self.assertEqual(statuses[:4], [200, 404, 500, 429])
        self.assertIn("cause", client["subsegments"][4])  # connection refused

        frontend = by_name["e2e-node-frontend"][0]
        self.assertEqual(frontend["http"]["request"]["method"], "POST")
        self.assertEqual(frontend["http"]["response"]["status"], 201)
        self.assertEqual(frontend["parent_id"], "53995c3f42cd8ad8")
        self.assertTrue(frontend["trace_id"].endswith("-abcdef0123456789abcdef01"))

        in_progress = by_name["e2e-node-in-progress"]
        self.assertEqual(sorted(bool(d.get("in_progress")) for d in in_progress), [False, True])
        self.assertEqual(len({d["id"] for d in in_progress}), 1)
        long_running = by_name["long-running"][0]
        self.assertTrue(long_running["in_progress"])
        self.assertEqual(long_running["type"], "subsegment")

        streamed_parent = by_name["e2e-node-streamed"][0]
        streamed = [d for name, ds in by_name.items() if name.startswith("stream-") for d in ds]
        self.assertTrue(streamed, "no subsegment was streamed on its own")
        for s in streamed:
            self.assertEqual((s["type"], s["parent_id"], s["trace_id"]),
                             ("subsegment", streamed_parent["id"], streamed_parent["trace_id"]))
        self.assertEqual(len(streamed) + len(streamed_parent["subsegments"]), 110)

        large = [r for r in report["datagrams"] if '"e2e-node-large"' in r][0]
        self.assertGreater(len(large.encode()), 45 * 1024)
        self.assertGreaterEqual(sum(1 for n in by_name if n.startswith("e2e-node-bulk-")), 75)


if __name__ == "__main__":
    harness.main()
