#!/usr/bin/env python3
"""Contract tests: the real AWS SDK for JavaScript v3 (@aws-sdk/client-xray, pinned in package.json)
against a real `xrayd serve`.

js_sdk_client.mjs runs every operation once through the SDK (endpoint http://127.0.0.1:PORT, dummy
credentials, one attempt per call) and prints what the SDK returned or threw, as JSON; the tests here
check it. The point is that the SDK's own deserializers accept xrayd's answers: fields land with the
right JS types (Dates are Dates), paginators stop, and errors surface as the SDK's modeled
exception classes (InvalidRequestException by name and by class).

Needs node 20+ (what @aws-sdk/client-xray supports) and tests/e2e/node_modules (`npm ci` in tests/e2e): without them this test FAILS.
Tests decorated with @known_bug pin down xrayd bugs; they are expected to fail until fixed.

    python3 tests/e2e/test_serve_js_sdk.py --xrayd build/xrayd [-v]
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import harness
import serve_harness as sh
from serve_harness import known_bug

JS_CLIENT = os.path.join(harness.HERE, "js_sdk_client.mjs")
SDK_DIR = os.path.join(harness.HERE, "node_modules", "@aws-sdk", "client-xray")

RULE = {"RuleName": "js-checkout", "ResourceARN": "*", "Priority": 100, "FixedRate": 0.5, "ReservoirSize": 7,
        "ServiceName": "checkout", "ServiceType": "AWS::EC2::Instance", "Host": "*", "HTTPMethod": "POST",
        "URLPath": "/api/*", "Version": 1, "Attributes": {"tier": "gold"}}


class JsSdkTest(unittest.TestCase):
    """One xrayd serve and one run of js_sdk_client.mjs for the class; each test checks some steps."""

    @classmethod
    def setUpClass(cls):
        t0 = time.monotonic()
        node = shutil.which("node")
        if node is None:
            raise AssertionError("node is not on PATH: this test needs node 20+ (and `npm ci` in tests/e2e)")
        if not os.path.isfile(os.path.join(SDK_DIR, "package.json")):
            raise AssertionError(f"{SDK_DIR} is missing: run `npm ci` in tests/e2e (scripts/setup.sh does it)")
        cls.xrayd = sh.XraydServe().start()
        try:
            n = sh.now()
            cls.n = n
            t = sh.trace_id(n)
            root = sh.segment(t, "js-root", start=n - 5, duration=1.0, annotations={"sdk": "js"})
            sub = sh.subsegment(t, root["id"], "js-streamed", start=n - 4.9)
            cls.trace = t
            cls.root, cls.sub = root, sub
            cls.invalid = [{"trace_id": t, "id": sh.new_id(), "name": "no-start"},
                           sh.segment("1-bad", "bad-trace-id")]
            docs = [sh.dumps(root), sh.dumps(sub), "{not json"] + [sh.dumps(d) for d in cls.invalid]
            cls.bulk = [sh.segment(sh.trace_id(n), f"bulk-{i}", start=n - 30 + i * 0.05) for i in range(120)]
            request = {"endpoint": cls.xrayd.endpoint, "region": sh.REGION, "start": int(n - 120),
                       "end": int(n + 60), "docs": docs, "bulk": [sh.dumps(d) for d in cls.bulk],
                       "trace_ids": [t], "rule": RULE, "client_id": "0123456789abcdef01234567"}
            with tempfile.TemporaryDirectory() as home:
                try:
                    p = subprocess.run([node, JS_CLIENT], input=json.dumps(request), capture_output=True, text=True,
                                       timeout=120, cwd=harness.HERE, env=sh.client_env(home))
                except subprocess.TimeoutExpired as e:
                    raise AssertionError(f"js_sdk_client.mjs did not finish in 120 s; stderr:\n{e.stderr}")
            if p.returncode != 0:
                raise AssertionError(f"js_sdk_client.mjs exited {p.returncode}; stderr:\n{p.stderr[-3000:]}")
            lines = [l for l in p.stdout.split("\n") if l.startswith("{")]
            if not lines:
                raise AssertionError(f"js_sdk_client.mjs printed no report:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
            cls.report = json.loads(lines[-1])
            cls.steps = cls.report["steps"]
            cls.alive_after = cls.xrayd.alive()
            print(f"\n  @aws-sdk/client-xray {cls.report['sdk_version']} on node {cls.report['node']}: "
                  f"{len(cls.steps)} steps in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        except BaseException:
            print(f"\n--- xrayd serve log ---\n{cls.xrayd.log_tail(60)}", file=sys.stderr)
            cls.xrayd.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.xrayd.cleanup()

    # -- helpers --
    def ok(self, name) -> dict:
        s = self.steps.get(name)
        self.assertIsNotNone(s, f"step {name} did not run")
        self.assertTrue(s["ok"], f"{name} failed in the SDK: {json.dumps(s.get('error'))[:1500]}")
        if not name.startswith("paginate"):  # a paginator's result is ours, not an SDK output
            self.assertEqual(s["data"].get("$httpStatusCode"), 200, name)
        return s["data"]

    def error(self, name, error_name, status=400) -> dict:
        s = self.steps.get(name)
        self.assertIsNotNone(s, f"step {name} did not run")
        self.assertFalse(s["ok"], f"{name} should have failed: {json.dumps(s.get('data'))[:800]}")
        e = s["error"]
        self.assertEqual(e["name"], error_name, e)
        self.assertEqual(e["httpStatusCode"], status, e)
        self.assertTrue(e["modeled"], f"not an XRayServiceException: the SDK could not parse the error: {e}")
        self.assertEqual(e["fault"], "client", e)
        self.assertTrue(e["message"], e)
        return e

    # -- tests --
    def test_xrayd_survived(self):
        self.assertTrue(self.alive_after, f"xrayd serve died during the JS run:\n{self.xrayd.log_tail()}")

    def test_sdk_version(self):
        self.assertTrue(self.report["sdk_version"].startswith("3."), self.report["sdk_version"])

    def test_put_trace_segments(self):
        out = self.ok("putTraceSegments")
        un = out["UnprocessedTraceSegments"]
        self.assertEqual(len(un), 3, un)
        self.assertEqual(sorted(u["Id"] for u in un if u.get("Id")), sorted(d["id"] for d in self.invalid))
        self.assertTrue(all(u.get("ErrorCode") for u in un), un)
        self.assertEqual(self.steps["putBulk"]["unprocessedTotal"], 0)

    def test_get_trace_summaries_first_page(self):
        out = self.ok("getTraceSummaries")
        types = self.steps["getTraceSummaries"]["types"]
        self.assertEqual(len(out["TraceSummaries"]), 100, "121 traces: a full first page")
        self.assertIsInstance(out.get("NextToken"), str)
        self.assertEqual(types["ApproximateTime"], "Date")
        self.assertEqual(set(types["MatchedEventTime"]), {"Date"})
        self.assertEqual(set(types["Duration"]), {"number"})
        self.assertLessEqual(set(types["StartTime"]), {"Date", "undefined"})
        mine = [s for s in out["TraceSummaries"] if s["Id"] == self.trace]
        if mine:
            self.assertEqual(mine[0]["Annotations"]["sdk"][0]["AnnotationValue"], {"StringValue": "js"})

    def test_paginator_get_trace_summaries(self):
        want = {d["trace_id"] for d in self.bulk} | {self.trace}
        for trt in ("TraceId", "Event"):
            with self.subTest(time_range_type=trt):
                pages = self.ok("paginate" + trt)["pages"]
                self.assertGreaterEqual(len(pages), 2, "more than 100 traces take more than one page")
                self.assertIsNone(pages[-1]["NextToken"])
                flat = [i for p in pages for i in p["ids"]]
                self.assertEqual(len(flat), len(set(flat)), "pages overlap")
                self.assertEqual(set(flat), want)

    def test_batch_get_traces(self):
        out = self.ok("batchGetTraces")
        self.assertEqual(out["UnprocessedTraceIds"], [])
        [trace] = out["Traces"]
        self.assertEqual(trace["Id"], self.trace)
        self.assertEqual(self.steps["batchGetTraces"]["types"]["Duration"], ["number"])
        self.assertEqual(self.steps["batchGetTraces"]["types"]["LimitExceeded"], ["boolean"])
        self.assertAlmostEqual(trace["Duration"], 1.0, places=3)
        [seg] = trace["Segments"]
        doc = json.loads(seg["Document"])
        self.assertEqual(seg["Id"], self.root["id"])
        self.assertEqual(doc["annotations"], {"sdk": "js"})
        self.assertEqual([s["id"] for s in doc["subsegments"]], [self.sub["id"]])
        self.error("batchGetTracesTooMany", "InvalidRequestException")

    def test_sampling_rules(self):
        before = self.ok("getSamplingRulesBefore")["SamplingRuleRecords"]
        [default] = [r for r in before if r["SamplingRule"]["RuleName"] == "Default"]
        d = default["SamplingRule"]
        self.assertEqual((d["Priority"], d["ResourceARN"], d["Version"], d["Attributes"]), (10000, "*", 1, {}))
        self.assertEqual(set(self.steps["getSamplingRulesBefore"]["types"]["CreatedAt"]), {"Date"})

        created = self.ok("createSamplingRule")["SamplingRuleRecord"]
        for k, v in RULE.items():
            self.assertEqual(created["SamplingRule"][k], v, k)
        self.assertEqual(self.steps["createSamplingRule"]["types"]["CreatedAt"], ["Date"])
        self.assertEqual(self.steps["createSamplingRule"]["types"]["ModifiedAt"], ["Date"])
        self.error("createSamplingRuleAgain", "InvalidRequestException")

        upd = self.ok("updateSamplingRule")["SamplingRuleRecord"]["SamplingRule"]
        self.assertEqual((upd["FixedRate"], upd["Priority"], upd["Attributes"]), (0.25, 50, {"tier": "silver"}))
        self.assertEqual((upd["URLPath"], upd["HTTPMethod"]), ("/api/*", "POST"))
        after = {r["SamplingRule"]["RuleName"]: r["SamplingRule"] for r in
                 self.ok("getSamplingRulesAfterUpdate")["SamplingRuleRecords"]}
        self.assertEqual(set(after), {"Default", RULE["RuleName"]})
        self.assertEqual(after[RULE["RuleName"]]["FixedRate"], 0.25)

        deleted = self.ok("deleteSamplingRule")["SamplingRuleRecord"]["SamplingRule"]
        self.assertEqual(deleted["RuleName"], RULE["RuleName"])
        e = self.error("deleteDefaultSamplingRule", "InvalidRequestException")
        self.assertTrue(e["isInvalidRequestException"])
        self.assertEqual([r["SamplingRule"]["RuleName"] for r in self.ok("getSamplingRulesAfterDelete")[
            "SamplingRuleRecords"]], ["Default"])

    def test_update_sampling_rule_by_arn(self):
        self.ok("updateSamplingRuleByArn")

    def test_default_rule_timestamps(self):
        [default] = [r for r in self.ok("getSamplingRulesBefore")["SamplingRuleRecords"]
                     if r["SamplingRule"]["RuleName"] == "Default"]
        self.assertFalse(default["CreatedAt"].startswith("1970"), default["CreatedAt"])

    def test_sampling_targets(self):
        out = self.ok("getSamplingTargets")
        types = self.steps["getSamplingTargets"]["types"]
        self.assertEqual(types["LastRuleModification"], "Date")
        self.assertEqual(set(types["ReservoirQuotaTTL"]), {"Date"})
        self.assertEqual(set(types["ReservoirQuota"]), {"number"})
        targets = {d["RuleName"]: d for d in out["SamplingTargetDocuments"]}
        self.assertEqual(set(targets), {"Default", RULE["RuleName"]})
        self.assertEqual(targets[RULE["RuleName"]]["FixedRate"], 0.25)  # after the update
        self.assertEqual(targets[RULE["RuleName"]]["Interval"], 10)
        self.assertEqual([u["RuleName"] for u in out["UnprocessedStatistics"]], ["no-such-rule"])

    def test_groups(self):
        g = self.ok("createGroup")["Group"]
        self.assertEqual((g["GroupName"], g["FilterExpression"]), ("checkout", 'service("checkout")'))
        self.assertTrue(g["GroupARN"].endswith(":group/checkout"))
        self.assertEqual({x["GroupName"] for x in self.ok("getGroups")["Groups"]}, {"Default", "checkout"})
        self.assertEqual(self.ok("getGroup")["Group"], g)
        self.assertEqual(self.ok("getGroupByArn")["Group"], g)
        self.assertEqual(self.ok("updateGroup")["Group"]["FilterExpression"], 'service("payments")')
        self.ok("deleteGroup")
        self.assertEqual([x["GroupName"] for x in self.ok("getGroupsAfterDelete")["Groups"]], ["Default"])

    def test_insights_and_encryption(self):
        self.assertEqual(self.ok("getInsightSummaries")["InsightSummaries"], [])
        self.assertEqual(self.ok("getEncryptionConfig")["EncryptionConfig"]["Type"], "NONE")

    def test_errors_surface_as_modeled_exceptions(self):
        e = self.error("getGroupUnknown", "InvalidRequestException")
        self.assertTrue(e["isInvalidRequestException"], "not an instance of the SDK's InvalidRequestException")
        self.assertIn("no-such-group", e["message"])
        e = self.error("getTraceSummariesBackwards", "InvalidRequestException")
        self.assertTrue(e["isInvalidRequestException"])

    def test_operation_in_progress_answers_well_formed(self):
        """GetServiceGraph is being added: an answer or an error the SDK can parse, nothing else."""
        s = self.steps["getServiceGraph"]
        if s["ok"]:
            self.assertIsInstance(s["data"].get("Services", []), list)
        else:
            self.assertTrue(s["error"]["modeled"], s["error"])
            self.assertTrue(s["error"]["name"].endswith("Exception"), s["error"])
            print(f"    GetServiceGraph: {s['error']['name']}", file=sys.stderr)


if __name__ == "__main__":
    harness.main()
