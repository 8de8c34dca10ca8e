"""`xrayd serve` refuses bad X-Ray requests the way X-Ray does, over real sockets, with real clients:
InvalidRequestException (HTTP 400) naming the field, and never a crash, a 500 or internal text.

- JSON nested 100,000 deep (it killed `xrayd serve` with SIGSEGV) and 50,000 deep (it was stored and
  handed to every SDK) in CreateSamplingRule / UpdateSamplingRule, sent raw over a socket.
- Fields past the limits of AWS's model, sent by boto3 with its client-side checks turned off (so the
  server's are the ones tested) and by the AWS CLI (which checks minimums only, so maximums reach us).
- A filter expression with a non-ASCII character (it answered 500 with the exception text in a header).

    python3 tests/e2e/test_serve_validation.py --xrayd build/xrayd [-v]
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import harness
import serve_harness as sh

try:
    import boto3
    import botocore.config
    import botocore.exceptions
except ImportError:  # reported by the tests that need it
    boto3 = None

DEBIAN_AWS = "/usr/bin/aws"
RULE = {"RuleName": "checkout", "ResourceARN": "*", "Priority": 100, "FixedRate": 0.5, "ReservoirSize": 7,
        "ServiceName": "*", "ServiceType": "*", "Host": "*", "HTTPMethod": "*", "URLPath": "/api/*", "Version": 1}


def raw_post(port: int, path: str, body: bytes, timeout: float = 30.0):
    """One POST on its own connection → (status, headers as a dict of lower-cased names, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


class ValidationTest(unittest.TestCase):
    """One xrayd serve for the class; every test checks it is still alive afterwards."""

    @classmethod
    def setUpClass(cls):
        cls.xrayd = sh.XraydServe().start()

    @classmethod
    def tearDownClass(cls):
        cls.xrayd.cleanup()

    def tearDown(self):
        self.assertTrue(self.xrayd.alive(), f"xrayd serve died (exit {self.xrayd.proc.poll()}):\n"
                                            f"{self.xrayd.log_tail()}")

    def client(self):
        if boto3 is None:
            self.fail("boto3 is not installed for this python3")
        return boto3.client("xray", endpoint_url=self.xrayd.endpoint, region_name=sh.REGION,
                            aws_access_key_id=sh.DUMMY_ACCESS_KEY_ID,
                            aws_secret_access_key=sh.DUMMY_SECRET_ACCESS_KEY,
                            config=botocore.config.Config(parameter_validation=False, retries={"max_attempts": 1}))

    def assert_invalid(self, call, field: str, **kwargs):
        """The boto3 call fails with InvalidRequestException (400) whose message names `field`."""
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            call(**kwargs)
        err = cm.exception.response["Error"]
        self.assertEqual(err["Code"], "InvalidRequestException", cm.exception.response)
        self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        self.assertIn(field, err["Message"])
        return err["Message"]

    def test_deeply_nested_json_is_refused_not_parsed(self):
        for path, wrapper in (("/CreateSamplingRule", "SamplingRule"), ("/UpdateSamplingRule", "SamplingRuleUpdate")):
            for depth in (100_000, 50_000):
                with self.subTest(path=path, depth=depth):
                    value = "[" * depth + "]" * depth
                    body = '{"%s": {"RuleName": "deep", "Attributes": {"a": %s}}}' % (wrapper, value)
                    status, headers, out = raw_post(self.xrayd.api_port, path, body.encode())
                    self.assertEqual(status, 400, out[:200])
                    self.assertEqual(headers.get("x-amzn-errortype"), "InvalidRequestException")
                    self.assertEqual(json.loads(out)["message"], "request body nested deeper than 16 levels")
                    self.assertTrue(self.xrayd.alive(), self.xrayd.log_tail())
        status, _, out = raw_post(self.xrayd.api_port, "/GetSamplingRules", b"{}")
        self.assertEqual(status, 200)
        self.assertEqual([r["SamplingRule"]["RuleName"] for r in json.loads(out)["SamplingRuleRecords"]], ["Default"])

    def test_field_limits_with_boto3(self):
        xray = self.client()
        msg = self.assert_invalid(xray.create_group, "GroupName", GroupName="g" * (1 << 20))
        self.assertLess(len(msg), 200, "the message names the field, it does not echo the megabyte")
        for field, value in (("Priority", 0), ("Priority", 10000), ("FixedRate", 1.5), ("ReservoirSize", -1),
                             ("RuleName", "r" * 33), ("URLPath", "/" * 129), ("Host", "h" * 65)):
            with self.subTest(field=field, value=value):
                self.assert_invalid(xray.create_sampling_rule, "SamplingRule." + field,
                                    SamplingRule={**RULE, field: value})
        self.assert_invalid(xray.create_sampling_rule, "SamplingRule.Version",
                            SamplingRule={k: v for k, v in RULE.items() if k != "Version"})
        self.assert_invalid(xray.create_sampling_rule, "SamplingRule.Attributes",
                            SamplingRule={**RULE, "Attributes": {str(i): "v" for i in range(6)}})
        self.assert_invalid(xray.batch_get_traces, "TraceIds", TraceIds=[sh.trace_id() for _ in range(6)])
        self.assert_invalid(xray.batch_get_traces, "TraceIds[0]", TraceIds=["1-" + "0" * 40])
        now = int(sh.now())
        self.assert_invalid(xray.get_trace_summaries, "TimeRangeType", StartTime=now - 60, EndTime=now,
                            TimeRangeType="Span")
        self.assert_invalid(xray.get_trace_summaries, "FilterExpression", StartTime=now - 60, EndTime=now,
                            FilterExpression="x" * 5000)
        self.assert_invalid(xray.get_sampling_targets, "ClientID", SamplingStatisticsDocuments=[
            {"RuleName": "Default", "ClientID": "short", "Timestamp": now, "RequestCount": 1, "SampledCount": 0}])
        self.assert_invalid(xray.update_sampling_rule, "SamplingRuleUpdate.FixedRate",
                            SamplingRuleUpdate={"RuleName": "Default", "FixedRate": -0.1})
        # Nothing was created along the way.
        self.assertEqual([g["GroupName"] for g in xray.get_groups()["Groups"]], ["Default"])
        self.assertEqual(len(xray.get_sampling_rules()["SamplingRuleRecords"]), 1)
        # And a valid request still works.
        xray.create_sampling_rule(SamplingRule=RULE)

    def test_non_ascii_filter_is_an_invalid_request(self):
        now = int(sh.now())
        msg = self.assert_invalid(self.client().get_trace_summaries, "FilterExpression", StartTime=now - 60,
                                  EndTime=now, FilterExpression="responsetime > 1 AND é")
        self.assertIn("0xC3", msg)
        body = json.dumps({"StartTime": now - 60, "EndTime": now, "FilterExpression": "ü"}).encode()
        status, headers, out = raw_post(self.xrayd.api_port, "/TraceSummaries", body)
        self.assertEqual(status, 400, out)
        self.assertEqual(json.loads(out)["__type"], "InvalidRequestException")
        leaked = {k: v for k, v in headers.items() if "exception" in k or "what" in k}
        self.assertEqual(leaked, {}, "no internal text in headers")

    def test_field_limits_with_the_aws_cli(self):
        if not os.access(DEBIAN_AWS, os.X_OK):
            self.fail(f"{DEBIAN_AWS} is missing: install Debian's awscli (scripts/setup.sh does it)")
        home = tempfile.mkdtemp(prefix="xrayd-validation-cli-")
        try:
            p = subprocess.run([DEBIAN_AWS, "xray", "create-group", "--group-name", "g" * 40,
                                "--endpoint-url", self.xrayd.endpoint, "--region", sh.REGION, "--output", "json"],
                               capture_output=True, text=True, timeout=60, env=sh.client_env(home),
                               stdin=subprocess.DEVNULL)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        self.assertEqual(p.returncode, 254, p.stderr)  # the CLI's code for an error the service returned
        self.assertIn("InvalidRequestException", p.stderr)
        self.assertIn("GroupName length must be between 1 and 32 characters", p.stderr)


if __name__ == "__main__":
    harness.main()
