#!/usr/bin/env python3
"""The real AWS X-Ray SDK for Python → xrayd → a fake X-Ray API that verifies every SigV4 signature.

python_client.py (recorder with daemon_address, sampling=False, context_missing=LOG_ERROR) sends
segments with nested subsegments, annotations of every type, metadata, HTTP data, exceptions with
stacks, streamed subsegments, escaping-heavy text and a ~40 KB document, and reports the exact
datagrams the SDK sent. Every one must reach the fake byte for byte. It runs twice:

* under this interpreter (`python3` on PATH), with aws_xray_sdk 2.x from PyPI;
* under /usr/bin/python3 with Debian 12's python3-aws-xray-sdk 0.95, when that is installed
  (skipped with a message otherwise; scripts/setup.sh installs it, so CI runs it).

    python3 tests/e2e/test_sdk_python.py --xrayd build/xrayd
"""

import json
import os
import subprocess
import sys

import harness
from harness import XraydTestCase

PYTHON_CLIENT = os.path.join(harness.HERE, "python_client.py")
DEBIAN_PYTHON = "/usr/bin/python3"

_PROBE = ("import json, aws_xray_sdk.core\n"
          "from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter\n"
          "try:\n    from aws_xray_sdk.version import VERSION\nexcept ImportError:\n"
          "    import importlib.metadata\n    VERSION = importlib.metadata.version('aws-xray-sdk')\n"
          "print(json.dumps({'version': VERSION, 'file': aws_xray_sdk.core.__file__}))\n")


def probe_sdk(python: str):
    """The aws_xray_sdk version `python` imports, or None with the reason."""
    if not os.access(python, os.X_OK):
        return None, f"{python} does not exist"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        p = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=30, env=env)
    except subprocess.TimeoutExpired:
        return None, f"{python} timed out importing aws_xray_sdk"
    if p.returncode != 0:
        return None, f"{python} cannot import aws_xray_sdk: {p.stderr.strip().splitlines()[-1:]}"
    return json.loads(p.stdout.strip().split("\n")[-1]), ""


class PythonSdkTest(XraydTestCase):
    def run_client(self, python: str, udp_port: int) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_XRAY_")
               and k not in ("PYTHONPATH", "PYTHONHOME")}
        try:
            p = subprocess.run([python, PYTHON_CLIENT, f"127.0.0.1:{udp_port}"], cwd=harness.HERE, env=env,
                               capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            self.fail(f"python_client.py under {python} did not finish in 60 s; stderr:\n{e.stderr}")
        if p.returncode != 0:
            self.fail(f"python_client.py under {python} exited {p.returncode}; stderr:\n{p.stderr[-3000:]}")
        lines = [l for l in p.stdout.split("\n") if l.startswith("{")]
        self.assertTrue(lines, f"python_client.py printed no report; stderr:\n{p.stderr[-2000:]}")
        return json.loads(lines[-1])

    def check(self, python: str, major: str):
        daemon = self.start_xrayd()
        report = self.run_client(python, daemon.udp_port)
        self.assertTrue(report["sdk_version"].startswith(major), report["sdk_version"])
        docs = harness.assert_sdk_documents_delivered(self, daemon, report["datagrams"])
        print(f"  aws_xray_sdk {report['sdk_version']} (Python {report['python']}): {len(docs)} documents, "
              f"{len(self.fake.trace_requests())} requests, all signatures verified")

        prefix = f"e2e-py{major}"
        by_name = {}
        for d in docs:
            by_name.setdefault(d["name"], []).append(d)
        annotated = by_name[prefix + "-annotated"][0]
        self.assertEqual(annotated["annotations"]["retry_count"], 3)
        self.assertEqual(annotated["annotations"]["order_total"], 99.5)
        self.assertIs(annotated["annotations"]["is_premium"], True)
        self.assertIn("\u2028", annotated["annotations"]["tricky"])
        self.assertIn("😀", annotated["metadata"]["default"]["tricky"])
        self.assertEqual(annotated["metadata"]["my-namespace"]["config"]["region"], "us-west-2")
        self.assertEqual(annotated["http"]["response"]["status"], 201)
        self.assertEqual(annotated["user"], "alice@example.com")

        nested = by_name[prefix + "-nested"][0]
        self.assertEqual(nested["subsegments"][0]["subsegments"][0]["subsegments"][0]["name"], "level-3")

        errors = by_name[prefix + "-errors"][0]
        subs = {s["name"]: s for s in errors["subsegments"]}
        exc = subs["charge-card"]["cause"]["exceptions"][0]
        self.assertEqual(exc["type"], "CardDeclined")
        self.assertTrue(exc["stack"])
        self.assertTrue(subs["throttled-call"]["throttle"])
        self.assertTrue(errors["fault"])

        parent = by_name[prefix + "-streamed"][0]
        streamed = [d for n, ds in by_name.items() if n.startswith("stream-") for d in ds]
        self.assertTrue(streamed, "no subsegment was streamed on its own")
        for s in streamed:
            self.assertEqual((s["type"], s["parent_id"], s["trace_id"]), ("subsegment", parent["id"], parent["trace_id"]))
        self.assertEqual(len(streamed) + len(parent.get("subsegments", [])), 45)

        self.assertGreater(max(len(x.encode()) for x in report["datagrams"]), 40 * 1024)
        self.assertEqual(sum(1 for n in by_name if n.startswith(prefix + "-bulk-")), 60)

    def test_python_sdk_current(self):
        info, why = probe_sdk(sys.executable)
        if info is None:
            self.fail(f"the test interpreter has no aws_xray_sdk ({why}); pip install aws-xray-sdk")
        self.assertTrue(info["version"].startswith("2."), f"expected aws_xray_sdk 2.x, got {info}")
        self.check(sys.executable, "2")

    def test_python_sdk_debian_095(self):
        info, why = probe_sdk(DEBIAN_PYTHON)
        if info is None or not info["version"].startswith("0."):
            msg = (f"SKIPPED: Debian's aws_xray_sdk 0.95 is not available under {DEBIAN_PYTHON} "
                   f"({why or info}); apt-get install python3-aws-xray-sdk to run this part")
            print("  " + msg, file=sys.stderr)
            self.skipTest(msg)
        self.check(DEBIAN_PYTHON, "0")


if __name__ == "__main__":
    harness.main()
