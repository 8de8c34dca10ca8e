#!/usr/bin/env python3
"""Contract tests: the real AWS CLI against a real `xrayd serve`.

Runs every test once per AWS CLI found: Debian's /usr/bin/aws (package awscli, CLI v2.9, listed in
scripts/debian-packages.txt) and any other `aws` on PATH (e.g. a pip-installed CLI v1). Each test gets
a fresh `xrayd serve` on free loopback ports with a new data directory; the CLI gets
--endpoint-url http://127.0.0.1:PORT --region us-east-1 --output json, dummy credentials and no
config files. Without any AWS CLI the test FAILS (it does not skip).

Tests decorated with @known_bug pin down xrayd bugs found by these tests; they are expected to fail
until the bug is fixed (then remove the decorator).

    python3 tests/e2e/test_serve_awscli.py --xrayd build/xrayd [--cli debian|path] [--group traces|api]
            [AwsDebianApiTest.test_groups_crud]

ctest runs it as four tests (each CLI × {traces, api}) to keep each well inside its time limit.
"""

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import harness
import serve_harness as sh
from serve_harness import known_bug

DEBIAN_AWS = "/usr/bin/aws"
SERVER_ERROR_RE = re.compile(r"An error occurred \((\w+)\) when calling the (\w+) operation")


def find_clis() -> list:
    """Paths of the CLIs to test: /usr/bin/aws when present, then the first other `aws` on PATH."""
    found = []
    if os.access(DEBIAN_AWS, os.X_OK):
        found.append(DEBIAN_AWS)
    for d in os.environ.get("PATH", "").split(os.pathsep):
        p = os.path.join(d or ".", "aws")
        if os.path.isfile(p) and os.access(p, os.X_OK):
            if not any(os.path.realpath(p) == os.path.realpath(f) for f in found):
                found.append(p)
            break
    return found


_VERSIONS = {}


def cli_version(path: str) -> str:
    if path not in _VERSIONS:
        with tempfile.TemporaryDirectory() as home:
            p = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60,
                               env=sh.client_env(home), stdin=subprocess.DEVNULL)
        m = re.search(r"aws-cli/(\d+)\.(\d+)\.(\d+)", p.stdout + p.stderr)
        _VERSIONS[path] = m.group(0)[len("aws-cli/"):] if m else "?"
    return _VERSIONS[path]


class CliResult:
    def __init__(self, argv, p: subprocess.CompletedProcess, seconds: float):
        self.argv, self.rc, self.stdout, self.stderr, self.seconds = argv, p.returncode, p.stdout, p.stderr, seconds

    def json(self):
        return json.loads(self.stdout) if self.stdout.strip() else None

    def server_error(self):
        """(ErrorCode, Operation) from the CLI's 'An error occurred (X) when calling the Y operation'."""
        m = SERVER_ERROR_RE.search(self.stderr)
        return (m.group(1), m.group(2)) if m else None

    def __str__(self):
        return (f"aws {' '.join(self.argv)}\n  exit {self.rc}\n  stdout: {self.stdout[-1500:]}\n"
                f"  stderr: {self.stderr[-1500:]}")


class CliBase:
    """Running the CLI; TracesContract and ApiContract hold the tests, mixed into unittest.TestCase
    classes per AWS CLI found (see the bottom of the file)."""

    AWS = None  # path of the CLI, set by the subclasses

    @classmethod
    def setUpClass(cls):
        if cls.AWS is None:
            raise AssertionError("no AWS CLI found: install Debian's awscli (scripts/debian-packages.txt) "
                                 "or put `aws` on PATH")
        version = cli_version(cls.AWS)
        cls.MAJOR = int(version.split(".")[0]) if version[0].isdigit() else 0
        # Exit codes: https://docs.aws.amazon.com/cli/latest/userguide/cli-chap-returncodes.html (v2);
        # v1 uses 255 for service and validation errors and argparse's 2 for usage errors.
        cls.RC_SERVER_ERROR = 254 if cls.MAJOR >= 2 else 255
        cls.RC_PARAM_VALIDATION = 252 if cls.MAJOR >= 2 else 255
        cls.RC_USAGE = 252 if cls.MAJOR >= 2 else 2
        cls.home = tempfile.mkdtemp(prefix="xrayd-awscli-home-")
        print(f"\n  AWS CLI {cls.AWS}: aws-cli/{version}", flush=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(getattr(cls, "home", ""), ignore_errors=True)

    # -- running the CLI --
    def aws(self, *args, endpoint=None, timeout=60) -> CliResult:
        endpoint = endpoint or self.xrayd.endpoint
        argv = ["xray", *args, "--endpoint-url", endpoint, "--region", sh.REGION, "--output", "json"]
        t0 = time.monotonic()
        try:
            p = subprocess.run([self.AWS, *argv], capture_output=True, text=True, timeout=timeout,
                               env=sh.client_env(self.home), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            self.fail(f"aws {' '.join(argv)} did not finish in {timeout} s: {e.stderr}")
        return CliResult(argv, p, time.monotonic() - t0)

    def ok(self, *args, **kw):
        r = self.aws(*args, **kw)
        self.assertEqual(r.rc, 0, f"expected success:\n{r}")
        try:
            return r.json()
        except json.JSONDecodeError:
            self.fail(f"CLI output is not JSON:\n{r}")

    def server_error(self, code, *args, **kw) -> CliResult:
        """Runs a command the server must refuse with `code` (an X-Ray error type)."""
        r = self.aws(*args, **kw)
        self.assertEqual(r.rc, self.RC_SERVER_ERROR, f"expected a service error ({code}):\n{r}")
        self.assertIsNotNone(r.server_error(), f"no 'An error occurred (...)' message:\n{r}")
        self.assertEqual(r.server_error()[0], code, str(r))
        self.assertEqual(r.stdout.strip(), "", str(r))
        self.assert_alive()
        return r

    def put(self, docs) -> list:
        """put-trace-segments; returns UnprocessedTraceSegments."""
        out = self.ok("put-trace-segments", "--trace-segment-documents", *[sh.dumps(d) for d in docs])
        self.assertIn("UnprocessedTraceSegments", out)
        return out["UnprocessedTraceSegments"]

    def put_all(self, docs):
        for i in range(0, len(docs), 50):
            self.assertEqual(self.put(docs[i:i + 50]), [])

    def traces(self, *tids) -> dict:
        """batch-get-traces → {trace id: [parsed segment documents]} (auto-paginated by the CLI)."""
        out = self.ok("batch-get-traces", "--trace-ids", *tids)
        self.assertEqual(out.get("UnprocessedTraceIds", []), [], out)
        got = {}
        for t in out["Traces"]:
            self.assertIn(t["Id"], tids)
            self.assertNotIn(t["Id"], got, f"trace {t['Id']} returned twice")
            docs = []
            for s in t["Segments"]:
                doc = json.loads(s["Document"])
                self.assertEqual(s["Id"], doc["id"], s)
                docs.append(doc)
            got[t["Id"]] = docs
            self.assertIsInstance(t["Duration"], (int, float))
        return got

    def summaries(self, start, end, *extra) -> list:
        out = self.ok("get-trace-summaries", "--start-time", str(start), "--end-time", str(end), *extra)
        self.assertIsInstance(out["TraceSummaries"], list)
        return out["TraceSummaries"]


class TracesContract(CliBase):
    """Segments in (PutTraceSegments, UDP), traces out (GetTraceSummaries, BatchGetTraces)."""

    # ---------------------------------------------------------------------------------------
    # PutTraceSegments

    def test_put_trace_segments_reports_invalid_documents(self):
        t_ok, t_bad = sh.trace_id(), sh.trace_id()
        good_seg = sh.segment(t_ok, "checkout", http={"request": {"method": "POST", "url": "http://shop/buy"},
                                                        "response": {"status": 201}},
                              annotations={"customer": "c-1", "total": 12.5, "vip": True})
        good_sub = sh.subsegment(t_ok, good_seg["id"], "db-call")
        no_start = {"trace_id": t_bad, "id": sh.new_id(), "name": "no-start", "end_time": sh.now()}
        bad_trace = sh.segment("1-xyz-not-a-trace-id", "bad-trace-id")
        no_name = {"trace_id": t_bad, "id": sh.new_id(), "start_time": sh.now() - 1, "end_time": sh.now()}
        orphan_sub = sh.subsegment(t_bad, "", "no-parent")  # independent subsegment without parent_id
        del orphan_sub["parent_id"]
        invalid = [no_start, bad_trace, no_name, orphan_sub]
        unprocessed = self.put([good_seg, no_start, good_sub, bad_trace, no_name, "{not json", orphan_sub])

        self.assertEqual(len(unprocessed), 5, unprocessed)
        for u in unprocessed:
            self.assertIsInstance(u.get("ErrorCode"), str, u)
            self.assertTrue(u.get("ErrorCode"), u)
        ids = [u.get("Id") for u in unprocessed]
        self.assertEqual(sorted(i for i in ids if i), sorted(d["id"] for d in invalid))
        self.assertNotIn(good_seg["id"], ids)
        self.assertNotIn(good_sub["id"], ids)

        got = self.traces(t_ok, t_bad)
        self.assertNotIn(t_bad, got, "a trace made only of rejected documents was stored")
        self.assertEqual([d["id"] for d in got[t_ok]], [good_seg["id"]])
        stored = got[t_ok][0]
        self.assertEqual(stored["annotations"], good_seg["annotations"])
        self.assertEqual(stored["http"], good_seg["http"])
        self.assertEqual([s["id"] for s in stored.get("subsegments", [])], [good_sub["id"]])

    # ---------------------------------------------------------------------------------------
    # GetTraceSummaries

    def test_get_trace_summaries_fields(self):
        t = sh.trace_id()
        root = sh.segment(t, "frontend", origin="AWS::EC2::Instance", user="alice",
                          http={"request": {"method": "GET", "url": "http://shop/cart", "user_agent": "ua/1",
                                            "client_ip": "203.0.113.9"}, "response": {"status": 500}},
                          fault=True, annotations={"tier": "gold", "items": 3, "vip": False})
        sub = sh.subsegment(t, root["id"], "db", start=root["start_time"] + 0.01, duration=0.05)
        self.put([root, sub])
        n = sh.now()
        sums = self.summaries(int(n - 60), int(n + 60))
        self.assertEqual([s["Id"] for s in sums], [t])
        s = sums[0]
        self.assertTrue(s["HasFault"])
        self.assertFalse(s["HasError"])
        self.assertFalse(s["HasThrottle"])
        self.assertFalse(s["IsPartial"])
        self.assertAlmostEqual(s["Duration"], 0.25, places=3)
        self.assertAlmostEqual(s["ResponseTime"], 0.25, places=3)
        self.assertEqual(s["Http"]["HttpURL"], "http://shop/cart")
        self.assertEqual(s["Http"]["HttpStatus"], 500)
        self.assertEqual(s["Http"]["HttpMethod"], "GET")
        self.assertEqual(s["Http"]["UserAgent"], "ua/1")
        self.assertEqual(s["Http"]["ClientIp"], "203.0.113.9")
        self.assertEqual(s["EntryPoint"]["Name"], "frontend")
        self.assertIn("frontend", [x["Name"] for x in s["ServiceIds"]])
        self.assertEqual([u["UserName"] for u in s["Users"]], ["alice"])
        ann = s["Annotations"]
        self.assertEqual(ann["tier"][0]["AnnotationValue"], {"StringValue": "gold"})
        self.assertEqual(ann["items"][0]["AnnotationValue"], {"NumberValue": 3})
        self.assertEqual(ann["vip"][0]["AnnotationValue"], {"BooleanValue": False})
        self.assertIsInstance(s["Revision"], int)
        self.assertIn("MatchedEventTime", s)

    def test_get_trace_summaries_time_range_types(self):
        """TraceId ranges select by the time in the trace id, Event ranges by the segments' times."""
        n = sh.now()
        old_epoch = int(n) - 3600
        t_now = sh.trace_id(n)
        t_old_id = sh.trace_id(old_epoch)  # trace id from an hour ago, segment from now
        self.put([sh.segment(t_now, "now"), sh.segment(t_old_id, "old-id", start=n - 2)])
        lo, hi = int(n - 120), int(n + 60)

        self.assertEqual({s["Id"] for s in self.summaries(lo, hi)}, {t_now}, "default TimeRangeType is TraceId")
        self.assertEqual({s["Id"] for s in self.summaries(lo, hi, "--time-range-type", "TraceId")}, {t_now})
        self.assertEqual({s["Id"] for s in self.summaries(lo, hi, "--time-range-type", "Event")}, {t_now, t_old_id})
        self.assertEqual({s["Id"] for s in self.summaries(old_epoch - 10, old_epoch + 10, "--time-range-type",
                                                          "TraceId")}, {t_old_id})
        self.assertEqual(self.summaries(old_epoch - 10, old_epoch + 10, "--time-range-type", "Event"), [])
        # ISO 8601 times work as well as epoch seconds.
        iso = lambda x: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(x))
        self.assertEqual({s["Id"] for s in self.summaries(iso(lo), iso(hi), "--time-range-type", "Event")},
                         {t_now, t_old_id})
        # An empty window.
        self.assertEqual(self.summaries(int(n + 3600), int(n + 3700)), [])

    def test_get_trace_summaries_pagination(self):
        n = sh.now()
        docs = [sh.segment(sh.trace_id(n), f"page-{i}", start=n - 30 + i * 0.05) for i in range(130)]
        body = {"TraceSegmentDocuments": [sh.dumps(d) for d in docs]}
        out = self.ok("put-trace-segments", "--cli-input-json", json.dumps(body))
        self.assertEqual(out["UnprocessedTraceSegments"], [])
        want = {d["trace_id"] for d in docs}
        lo, hi = int(n - 120), int(n + 60)
        for trt in ("TraceId", "Event"):
            with self.subTest(time_range_type=trt):
                # The CLI follows NextToken itself.
                got = [s["Id"] for s in self.summaries(lo, hi, "--time-range-type", trt)]
                self.assertEqual(len(got), len(set(got)), "a trace was listed twice")
                self.assertEqual(set(got), want)

        # Client-side pages of 40 (--max-items / --starting-token): disjoint, covering all.
        pages, token = [], None
        for _ in range(10):
            args = ["--max-items", "40"] + (["--starting-token", token] if token else [])
            out = self.ok("get-trace-summaries", "--start-time", str(lo), "--end-time", str(hi), *args)
            pages.append([s["Id"] for s in out["TraceSummaries"]])
            token = out.get("NextToken")
            if not token:
                break
        self.assertEqual([len(p) for p in pages], [40, 40, 40, 10])
        flat = [i for p in pages for i in p]
        self.assertEqual(len(flat), len(set(flat)), "pages overlap")
        self.assertEqual(set(flat), want)

        # Server-side pages (--no-paginate, --next-token): the server's own NextToken, by event time.
        out = self.ok("get-trace-summaries", "--start-time", str(lo), "--end-time", str(hi),
                      "--time-range-type", "Event", "--no-paginate")
        first = [s["Id"] for s in out["TraceSummaries"]]
        self.assertLess(len(first), 130)
        self.assertIsInstance(out.get("NextToken"), str, "a partial first page must carry a NextToken")
        rest, token = [], out["NextToken"]
        for _ in range(20):
            out = self.ok("get-trace-summaries", "--start-time", str(lo), "--end-time", str(hi),
                          "--time-range-type", "Event", "--no-paginate", "--next-token", token)
            rest += [s["Id"] for s in out["TraceSummaries"]]
            token = out.get("NextToken")
            if not token:
                break
        self.assertFalse(set(first) & set(rest))
        self.assertEqual(sorted(first + rest), sorted(want))

    def test_get_trace_summaries_bad_requests(self):
        n = int(sh.now())
        self.server_error("InvalidRequestException", "get-trace-summaries", "--start-time", str(n),
                          "--end-time", str(n - 60))
        r = self.aws("get-trace-summaries", "--start-time", str(n - 60), "--end-time", str(n), "--no-paginate",
                     "--next-token", "garbage")
        self.assertEqual(r.rc, self.RC_SERVER_ERROR, str(r))
        self.assertEqual(r.server_error()[0], "InvalidRequestException", str(r))

    # ---------------------------------------------------------------------------------------
    # BatchGetTraces

    def test_batch_get_traces_merges_streamed_subsegments(self):
        t = sh.trace_id()
        n = sh.now()
        root = sh.segment(t, "frontend", start=n - 2, duration=1.0)
        stub = {"id": sh.new_id(), "name": "slow-call", "start_time": n - 1.9, "in_progress": True}
        root["subsegments"] = [stub]  # an in-progress stub, completed by a streamed copy below
        done_stub = sh.subsegment(t, root["id"], "slow-call", start=n - 1.9, duration=0.5, sub_id=stub["id"])
        grandchild = sh.subsegment(t, stub["id"], "inside-slow-call", start=n - 1.8)
        late = sh.subsegment(t, root["id"], "sent-before-parent", start=n - 1.5)
        downstream = sh.segment(t, "backend", start=n - 1.7, parent_id=stub["id"])
        self.assertEqual(self.put([late]), [])  # its parent is not there yet
        self.assertEqual(self.put([root, grandchild]), [])
        self.assertEqual(self.put([done_stub, downstream]), [])
        self.assertEqual(self.put([root, late, done_stub]), [])  # duplicates change nothing

        docs = self.traces(t)[t]
        by_id = {d["id"]: d for d in docs}
        self.assertEqual(sorted(by_id), sorted([root["id"], downstream["id"]]),
                         "streamed subsegments must be merged, not listed as segments")
        links = {}
        for d in docs:
            for node, parent in sh.walk(d):
                self.assertNotIn(node["id"], links, f"{node['id']} appears twice in the trace")
                links[node["id"]] = parent
        self.assertEqual(links[late["id"]], root["id"])
        self.assertEqual(links[stub["id"]], root["id"])
        self.assertEqual(links[grandchild["id"]], stub["id"])
        self.assertIsNone(links[downstream["id"]])
        self.assertEqual(by_id[downstream["id"]]["parent_id"], stub["id"])
        merged = next(node for node, _ in sh.walk(by_id[root["id"]]) if node["id"] == stub["id"])
        self.assertEqual(merged["end_time"], done_stub["end_time"], "the completed copy must replace the stub")
        self.assertFalse(merged.get("in_progress", False))

    def test_batch_get_traces_streamed_child_of_embedded_subsegment(self):
        """Segment R embeds subsegment C; streamed A (parent R, earlier start) and streamed B (parent C).
        Merging A grows R.subsegments, moving C; B is then merged through a stale pointer to C."""
        n = sh.now()
        want, docs = {}, []
        for i in range(10):
            t = sh.trace_id()
            root = sh.segment(t, f"root-{i}", start=n - 2, duration=1.0)
            child = {"id": sh.new_id(), "name": "embedded", "start_time": n - 1.9, "end_time": n - 1.5}
            root["subsegments"] = [child]
            a = sh.subsegment(t, root["id"], "streamed-a", start=n - 1.95)
            b = sh.subsegment(t, child["id"], "streamed-b", start=n - 1.8)
            docs += [root, a, b]
            want[t] = {child["id"]: root["id"], a["id"]: root["id"], b["id"]: child["id"]}
        self.put_all(docs)
        tids = list(want)
        got = {}
        for i in range(0, len(tids), 5):
            got.update(self.traces(*tids[i:i + 5]))
        for t, links in want.items():
            seen = {node["id"]: parent for d in got[t] for node, parent in sh.walk(d)}
            for child_id, parent_id in links.items():
                self.assertEqual(seen.get(child_id), parent_id, t)
        self.assert_alive()

    def test_batch_get_traces_complete_embedded_subsegment_wins(self):
        """What the Node SDK sends for subsegment.flush() then segment.close(): the subsegment alone,
        in progress, then the segment with the finished subsegment inside."""
        t = sh.trace_id()
        n = sh.now()
        root = sh.segment(t, "job", start=n - 2, duration=1.0)
        sub_in_progress = sh.subsegment(t, root["id"], "long-running", start=n - 1.9, in_progress=True)
        done = {"id": sub_in_progress["id"], "name": "long-running", "start_time": n - 1.9, "end_time": n - 1.2,
                "annotations": {"finished": True}}
        root["subsegments"] = [done]
        self.put([sub_in_progress])
        self.put([root])
        [doc] = self.traces(t)[t]
        [sub] = doc["subsegments"]
        self.assertFalse(sub.get("in_progress", False), sub)
        self.assertEqual(sub.get("annotations"), {"finished": True})
        [s] = [s for s in self.summaries(int(n - 60), int(n + 60)) if s["Id"] == t]
        self.assertFalse(s["IsPartial"])

    def test_batch_get_traces_in_progress_converges(self):
        t = sh.trace_id()
        n = sh.now()
        seg_id = sh.new_id()
        self.put([sh.segment(t, "job", start=n - 1, seg_id=seg_id, in_progress=True)])
        [s] = self.summaries(int(n - 60), int(n + 60))
        self.assertTrue(s["IsPartial"], "a trace with an in-progress segment is partial")
        [doc] = self.traces(t)[t]
        self.assertTrue(doc["in_progress"])

        complete = sh.segment(t, "job", start=n - 1, duration=0.75, seg_id=seg_id, annotations={"done": True})
        self.put([complete])
        self.put([sh.segment(t, "job", start=n - 1, seg_id=seg_id, in_progress=True)])  # late stale copy
        [doc] = self.traces(t)[t]
        self.assertFalse(doc.get("in_progress", False))
        self.assertEqual(doc["end_time"], complete["end_time"])
        self.assertEqual(doc["annotations"], {"done": True})
        [s] = self.summaries(int(n - 60), int(n + 60))
        self.assertFalse(s["IsPartial"])
        self.assertAlmostEqual(s["Duration"], 0.75, places=3)

    def test_batch_get_traces_many_ids(self):
        """Up to 5 ids per call (X-Ray's limit); an unknown id is not returned as a trace."""
        tids = [sh.trace_id() for _ in range(5)]
        self.put_all([sh.segment(t, f"s{i}") for i, t in enumerate(tids)])
        unknown = sh.trace_id()
        out = self.ok("batch-get-traces", "--trace-ids", *tids[:4], unknown)
        self.assertEqual({t["Id"] for t in out["Traces"]}, set(tids[:4]))
        self.assertIsInstance(out.get("UnprocessedTraceIds", []), list)

    # ---------------------------------------------------------------------------------------
    # UDP

    def test_segments_sent_over_udp_are_served(self):
        t = sh.trace_id()
        root = sh.segment(t, "udp-frontend", annotations={"via": "udp"})
        sub = sh.subsegment(t, root["id"], "udp-streamed")
        sh.send_udp(self.xrayd.udp_port, [sub, root])
        sh.send_udp(self.xrayd.udp_port, ["garbage without a header", '{"format":"json","version":1}\n{bad'],
                    header=b"")
        self.xrayd.wait_for_segments({t: [root["id"], sub["id"]]})
        docs = self.traces(t)[t]
        self.assertEqual([d["id"] for d in docs], [root["id"]])
        self.assertEqual(docs[0]["annotations"], {"via": "udp"})
        self.assertEqual([s["id"] for s in docs[0]["subsegments"]], [sub["id"]])
        n = sh.now()
        self.assertIn(t, {s["Id"] for s in self.summaries(int(n - 60), int(n + 60))})
        self.assert_alive()


class ApiContract(CliBase):
    """Sampling rules and targets, groups, insights, encryption config, errors."""

    # ---------------------------------------------------------------------------------------
    # Sampling

    def rules(self) -> dict:
        out = self.ok("get-sampling-rules")
        return {r["SamplingRule"]["RuleName"]: r for r in out["SamplingRuleRecords"]}

    RULE = {"RuleName": "checkout-api", "ResourceARN": "*", "Priority": 100, "FixedRate": 0.5, "ReservoirSize": 7,
            "ServiceName": "checkout", "ServiceType": "AWS::EC2::Instance", "Host": "*", "HTTPMethod": "POST",
            "URLPath": "/api/*", "Version": 1, "Attributes": {"tier": "gold"}}

    def test_default_sampling_rule(self):
        rules = self.rules()
        self.assertIn("Default", rules)
        d = rules["Default"]["SamplingRule"]
        self.assertEqual(d["Priority"], 10000)
        self.assertEqual(d["ResourceARN"], "*")
        self.assertEqual(d["Version"], 1)
        self.assertEqual(d["Attributes"], {})
        for k in ("ServiceName", "ServiceType", "Host", "HTTPMethod", "URLPath"):
            self.assertEqual(d[k], "*", k)
        self.assertTrue(d["RuleARN"].endswith(":sampling-rule/Default"), d["RuleARN"])
        self.assertIsInstance(d["FixedRate"], float)
        self.assertIsInstance(d["ReservoirSize"], int)

    def test_default_sampling_rule_timestamps(self):
        d = self.rules()["Default"]
        for k in ("CreatedAt", "ModifiedAt"):
            v = d[k]
            secs = v if isinstance(v, (int, float)) else time.mktime(time.strptime(v[:19], "%Y-%m-%dT%H:%M:%S"))
            self.assertGreater(secs, 1_500_000_000, f"Default rule {k} = {v!r}")

    def test_sampling_rules_crud(self):
        created = self.ok("create-sampling-rule", "--sampling-rule", json.dumps(self.RULE))
        rec = created["SamplingRuleRecord"]
        rule = rec["SamplingRule"]
        for k, v in self.RULE.items():
            self.assertEqual(rule[k], v, k)
        self.assertTrue(rule["RuleARN"].endswith(":sampling-rule/checkout-api"), rule["RuleARN"])
        self.assertIn("CreatedAt", rec)
        self.assertIn("ModifiedAt", rec)

        rules = self.rules()
        self.assertEqual(set(rules), {"Default", "checkout-api"})
        self.assertEqual(rules["checkout-api"]["SamplingRule"], rule)

        self.server_error("InvalidRequestException", "create-sampling-rule", "--sampling-rule", json.dumps(self.RULE))

        upd = self.ok("update-sampling-rule", "--sampling-rule-update",
                      json.dumps({"RuleName": "checkout-api", "FixedRate": 0.25, "Priority": 50,
                                  "Attributes": {"tier": "silver"}}))
        r2 = upd["SamplingRuleRecord"]["SamplingRule"]
        self.assertEqual((r2["FixedRate"], r2["Priority"], r2["Attributes"]), (0.25, 50, {"tier": "silver"}))
        self.assertEqual((r2["ReservoirSize"], r2["URLPath"], r2["HTTPMethod"]), (7, "/api/*", "POST"),
                         "fields not in the update must keep their values")
        self.assertEqual(self.rules()["checkout-api"]["SamplingRule"], r2)

        # The Default rule's rate and reservoir may be changed, not deleted.
        upd = self.ok("update-sampling-rule", "--sampling-rule-update",
                      json.dumps({"RuleName": "Default", "FixedRate": 0.1, "ReservoirSize": 2}))
        self.assertEqual(upd["SamplingRuleRecord"]["SamplingRule"]["FixedRate"], 0.1)
        self.server_error("InvalidRequestException", "delete-sampling-rule", "--rule-name", "Default")

        deleted = self.ok("delete-sampling-rule", "--rule-name", "checkout-api")
        self.assertEqual(deleted["SamplingRuleRecord"]["SamplingRule"]["RuleName"], "checkout-api")
        self.assertEqual(set(self.rules()), {"Default"})
        self.server_error("InvalidRequestException", "delete-sampling-rule", "--rule-name", "checkout-api")
        self.server_error("InvalidRequestException", "update-sampling-rule", "--sampling-rule-update",
                          json.dumps({"RuleName": "no-such-rule", "FixedRate": 0.3}))

        # Delete by ARN.
        other = dict(self.RULE, RuleName="by-arn")
        arn = self.ok("create-sampling-rule", "--sampling-rule", json.dumps(other))["SamplingRuleRecord"][
            "SamplingRule"]["RuleARN"]
        self.assertEqual(self.ok("delete-sampling-rule", "--rule-arn", arn)["SamplingRuleRecord"]["SamplingRule"][
            "RuleName"], "by-arn")
        self.assertEqual(set(self.rules()), {"Default"})

    def test_update_sampling_rule_by_arn(self):
        arn = self.ok("create-sampling-rule", "--sampling-rule", json.dumps(self.RULE))["SamplingRuleRecord"][
            "SamplingRule"]["RuleARN"]
        upd = self.ok("update-sampling-rule", "--sampling-rule-update", json.dumps({"RuleARN": arn, "FixedRate": 0.2}))
        self.assertEqual(upd["SamplingRuleRecord"]["SamplingRule"]["FixedRate"], 0.2)

    def test_get_sampling_targets(self):
        self.ok("create-sampling-rule", "--sampling-rule", json.dumps(self.RULE))
        n = int(sh.now())
        stats = [{"RuleName": name, "ClientID": "0123456789abcdef01234567", "Timestamp": n, "RequestCount": 10,
                  "SampledCount": 3, "BorrowCount": 1} for name in ("Default", "checkout-api", "no-such-rule")]
        out = self.ok("get-sampling-targets", "--sampling-statistics-documents", json.dumps(stats))
        targets = {d["RuleName"]: d for d in out["SamplingTargetDocuments"]}
        self.assertEqual(set(targets), {"Default", "checkout-api"})
        self.assertEqual(targets["checkout-api"]["FixedRate"], 0.5)
        self.assertEqual(targets["Default"]["FixedRate"], self.rules()["Default"]["SamplingRule"]["FixedRate"])
        for name, d in targets.items():
            self.assertIsInstance(d["ReservoirQuota"], int, name)
            self.assertGreaterEqual(d["ReservoirQuota"], 0)
            self.assertLessEqual(d["ReservoirQuota"], 7 if name == "checkout-api" else 1)
            self.assertIsInstance(d["Interval"], int, name)
            self.assertIn("ReservoirQuotaTTL", d)
        self.assertIn("LastRuleModification", out)
        self.assertEqual([u["RuleName"] for u in out["UnprocessedStatistics"]], ["no-such-rule"])
        # What the clients reported comes back per rule and 10-second window.
        summaries = {s["RuleName"]: s for s in self.ok("get-sampling-statistic-summaries")["SamplingStatisticSummaries"]}
        self.assertNotIn("no-such-rule", summaries)
        s = summaries["checkout-api"]
        self.assertEqual((s["RequestCount"], s["SampledCount"], s["BorrowCount"]), (10, 3, 1))
        # The CLI prints a timestamp as given (a number) or as ISO 8601, depending on its version.
        ts = s["Timestamp"]
        ts = ts if isinstance(ts, (int, float)) else datetime.datetime.fromisoformat(ts).timestamp()
        self.assertEqual(ts % 10, 0, "a window starts on a 10-second boundary")
        self.assertLessEqual(abs(ts - n), 20)
        self.assertGreaterEqual(summaries["Default"]["RequestCount"], 10)

    # ---------------------------------------------------------------------------------------
    # Groups

    def groups(self) -> dict:
        return {g["GroupName"]: g for g in self.ok("get-groups")["Groups"]}

    def test_groups_crud(self):
        self.assertIn("Default", self.groups())
        g = self.ok("create-group", "--group-name", "checkout", "--filter-expression", 'service("checkout")')["Group"]
        self.assertEqual(g["GroupName"], "checkout")
        self.assertEqual(g["FilterExpression"], 'service("checkout")')
        arn = g["GroupARN"]
        self.assertTrue(arn.endswith(":group/checkout"), arn)
        self.assertEqual(set(self.groups()), {"Default", "checkout"})
        self.assertEqual(self.ok("get-group", "--group-name", "checkout")["Group"], g)
        self.assertEqual(self.ok("get-group", "--group-arn", arn)["Group"], g)
        self.server_error("InvalidRequestException", "create-group", "--group-name", "checkout")

        u = self.ok("update-group", "--group-arn", arn, "--filter-expression", 'service("payments")')["Group"]
        self.assertEqual(u["FilterExpression"], 'service("payments")')
        self.assertEqual(self.ok("get-group", "--group-name", "checkout")["Group"]["FilterExpression"],
                         'service("payments")')

        self.assertEqual(self.ok("delete-group", "--group-name", "checkout"), None)  # empty answer, no output
        self.assertEqual(set(self.groups()), {"Default"})
        self.server_error("InvalidRequestException", "get-group", "--group-name", "checkout")
        self.server_error("InvalidRequestException", "delete-group", "--group-name", "checkout")
        self.server_error("InvalidRequestException", "update-group", "--group-name", "checkout",
                          "--filter-expression", "ok")

    def test_group_insights_configuration_kept(self):
        g = self.ok("create-group", "--group-name", "ins", "--insights-configuration",
                    "InsightsEnabled=true,NotificationsEnabled=true")["Group"]
        self.assertEqual(g["InsightsConfiguration"], {"InsightsEnabled": True, "NotificationsEnabled": True})

    # ---------------------------------------------------------------------------------------
    # The rest of what is implemented

    def test_insight_summaries_and_encryption_config(self):
        n = int(sh.now())
        out = self.ok("get-insight-summaries", "--start-time", str(n - 3600), "--end-time", str(n))
        self.assertEqual(out["InsightSummaries"], [])
        cfg = self.ok("get-encryption-config")["EncryptionConfig"]
        self.assertEqual(cfg["Type"], "NONE")
        self.assertIn(cfg["Status"], ("ACTIVE", "UPDATING"))

    # ---------------------------------------------------------------------------------------
    # Errors

    def test_missing_parameters_are_caught_by_the_cli(self):
        """Usage and parameter validation errors never reach the server: the same exit code with a
        closed port as the endpoint."""
        dead = f"http://127.0.0.1:{harness.free_tcp_port()}"  # nothing listens: a request would fail to connect
        r = self.aws("batch-get-traces", endpoint=dead)
        self.assertEqual(r.rc, self.RC_USAGE, str(r))
        self.assertIn("--trace-ids", r.stderr)
        r = self.aws("create-sampling-rule", "--sampling-rule", '{"RuleName": "x"}', endpoint=dead)
        self.assertEqual(r.rc, self.RC_PARAM_VALIDATION, str(r))
        self.assertIn("Missing required parameter", r.stderr)
        self.assertIsNone(r.server_error(), str(r))
        r = self.aws("get-trace-summaries", "--start-time", "not-a-time", "--end-time", "1", endpoint=dead)
        self.assertNotEqual(r.rc, 0, str(r))
        self.assertIsNone(r.server_error(), str(r))
        self.assertNotIn("Could not connect", r.stderr, str(r))

    def test_server_errors(self):
        r = self.server_error("InvalidRequestException", "get-group", "--group-name", "no-such-group")
        self.assertEqual(r.server_error()[1], "GetGroup")
        self.assertIn("no-such-group", r.stderr, "the server's message is shown")
        self.server_error("UnknownOperationException", "list-tags-for-resource", "--resource-arn",
                          "arn:aws:xray:us-east-1:000000000000:group/Default")
        self.server_error("UnknownOperationException", "put-encryption-config", "--type", "NONE")

    def test_operations_in_progress_answer_well_formed(self):
        """Being added to xrayd: whatever they answer now must be JSON or a well-formed error."""
        n = int(sh.now())
        t = sh.trace_id()
        self.put([sh.segment(t, "svc")])
        cases = [("get-service-graph", "--start-time", str(n - 60), "--end-time", str(n + 60)),
                 ("get-trace-graph", "--trace-ids", t),
                 ("get-time-series-service-statistics", "--start-time", str(n - 60), "--end-time", str(n + 60)),
                 ("get-trace-summaries", "--start-time", str(n - 60), "--end-time", str(n + 60),
                  "--filter-expression", 'service("svc")')]
        for args in cases:
            with self.subTest(op=args[0]):
                r = self.aws(*args)
                if r.rc == 0:
                    self.assertIsInstance(r.json(), dict, str(r))
                else:
                    self.assertEqual(r.rc, self.RC_SERVER_ERROR, str(r))
                    self.assertIsNotNone(r.server_error(), str(r))
                    print(f"    {args[0]}: {r.server_error()[0]}")
        self.assert_alive()


def make_test_classes(cli: str = "all", group: str = "all"):
    """Defines Aws{Debian,Path}{Traces,Api}Test for the CLIs found. cli: debian | path | all;
    group: traces | api | all. Without any CLI: a failing placeholder."""
    clis = find_clis()
    if not clis:
        class AwsCliMissingTest(unittest.TestCase):
            def test_aws_cli_installed(self):
                self.fail("no AWS CLI: install Debian's awscli (scripts/debian-packages.txt) or put `aws` on PATH")
        globals()["AwsCliMissingTest"] = AwsCliMissingTest
        return
    made = 0
    for path in clis:
        label = "Debian" if path == DEBIAN_AWS else "Path"
        if cli not in ("all", label.lower()):
            continue
        for gname, mixin in (("Traces", TracesContract), ("Api", ApiContract)):
            if group not in ("all", gname.lower()):
                continue
            name = f"Aws{label}{gname}Test"
            globals()[name] = type(name, (mixin, sh.ServeTestCase), {"AWS": path})
            made += 1
    if not made and cli == "debian":  # scripts/setup.sh installs it: its absence is a failure
        class DebianAwsCliMissingTest(unittest.TestCase):
            def test_debian_awscli_installed(self):
                self.fail(f"{DEBIAN_AWS} is missing: apt-get install awscli (scripts/debian-packages.txt)")
        globals()["DebianAwsCliMissingTest"] = DebianAwsCliMissingTest
    elif not made:  # --cli path on a machine with only Debian's CLI: optional, so skipped
        class NoOtherCliTest(unittest.TestCase):
            @unittest.skip(f"no AWS CLI on PATH besides {DEBIAN_AWS}: nothing to run for --cli {cli}")
            def test_nothing_to_run(self):
                pass
        globals()["NoOtherCliTest"] = NoOtherCliTest


def take_option(name: str, default: str) -> str:
    """Removes `--name VALUE` / `--name=VALUE` from sys.argv; returns VALUE (or default)."""
    for i, a in enumerate(sys.argv):
        if a == f"--{name}" and i + 1 < len(sys.argv):
            value = sys.argv[i + 1]
            del sys.argv[i:i + 2]
            return value
        if a.startswith(f"--{name}="):
            del sys.argv[i]
            return a.split("=", 1)[1]
    return default


if __name__ == "__main__":
    make_test_classes(take_option("cli", "all"), take_option("group", "all"))
    harness.main()
