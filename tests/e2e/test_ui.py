#!/usr/bin/env python3
"""xrayd's web UI in a real browser: Debian's chromium driven by npm playwright-core (test_ui_browser.mjs),
against a real `xrayd serve` fed by the real X-Ray SDKs: the article's Flask app (Python aws_xray_sdk,
flask_hello.py), its Express twin (npm aws-xray-sdk-core + aws-xray-sdk-express, express_hello.js) and
test_ui_node_segments.js (aws-xray-sdk-core: a nested trace with a fault, and one whose names and
annotations carry an HTML-injection payload).

Checked: the list shows the traces sent; a filter narrows it (and survives a reload); a bad filter shows
the API's error in place; a click opens the waterfall with the right segments in the right nesting; the
map shows the right nodes and edges; pasting "Trace ID: 1-…" opens the trace; a sampling rule created in
/sampling is returned by GetSamplingRules (boto3), an invalid one shows the API's validation error; a group
created in /groups is returned by GetGroups; the injection payload renders as text and no script runs;
the first load is small, served gzip with a CSP. Screenshots of every page: --shots DIR (ctest: build/ui-screenshots).

    python3 tests/e2e/test_ui.py --xrayd build/xrayd [--shots DIR] [--chromium PATH] [-v]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import harness
import sdk_apps
import serve_harness as sh

try:
    import boto3
    import botocore.config
except ImportError:  # the test fails (not skips) without it
    boto3 = None

SHOTS = os.path.join(harness.REPO, "build", "ui-screenshots")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAYLOAD = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
FLASK, EXPRESS = "ui-flask", "ui-express"


def take_args():
    global SHOTS, CHROMIUM
    rest, args, i = [sys.argv[0]], sys.argv[1:], 0
    while i < len(args):
        if args[i] in ("--shots", "--chromium") and i + 1 < len(args):
            if args[i] == "--shots":
                SHOTS = os.path.abspath(args[i + 1])
            else:
                CHROMIUM = args[i + 1]
            i += 2
            continue
        rest.append(args[i])
        i += 1
    sys.argv = rest


def request_traced(app: sdk_apps.App) -> str:
    """GET / with a sampling decision in the trace header (so the SDK's sampler cannot drop it) and no
    Parent (so the app's segment is the trace's root, as for a request from a browser); the trace id."""
    root = sh.trace_id()
    status, body, _ = app.get("/", {sdk_apps.TRACE_HEADER: f"Root={root};Sampled=1"})
    assert status == 200 and root in body, (status, body)
    return root


class WebUiTest(unittest.TestCase):
    obs: dict = {}

    @classmethod
    def setUpClass(cls):
        if boto3 is None:
            raise AssertionError("boto3 is missing (Debian: python3-boto3)")
        if not os.access(CHROMIUM, os.X_OK):
            raise AssertionError(f"chromium not found at {CHROMIUM} (Debian: apt-get install chromium; or --chromium PATH)")
        for need in ("ui/node_modules/playwright-core/package.json", "tests/e2e/node_modules/aws-xray-sdk-core/package.json"):
            if not os.path.isfile(os.path.join(harness.REPO, need)):
                raise AssertionError(f"{need} is missing: run scripts/setup.sh (npm ci in ui/ and tests/e2e/)")
        os.makedirs(SHOTS, exist_ok=True)
        cls.work = tempfile.mkdtemp(prefix="xrayd-ui-e2e-")
        cls.xrayd = sh.XraydServe().start()
        try:
            cls._feed()
            cls._browse()
        except BaseException:
            print(cls.xrayd.log_tail(60), file=sys.stderr)
            cls.xrayd.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.xrayd.cleanup()
        shutil.rmtree(cls.work, ignore_errors=True)

    @classmethod
    def _feed(cls):
        daemon = f"tcp:127.0.0.1:{harness.free_tcp_port()} udp:127.0.0.1:{cls.xrayd.udp_port}"
        cls.traces = {}
        for service, command, key in ((FLASK, sdk_apps.python_command(), "flask"), (EXPRESS, sdk_apps.node_command(), "express")):
            port = harness.free_tcp_port()
            env = sdk_apps.base_env(port, service, daemon)
            env["XRAY_CENTRALIZED_SAMPLING"] = "false"
            app = sdk_apps.App(command, env, port, os.path.join(cls.work, f"{key}.log"))
            try:
                cls.traces[key] = request_traced(app)
                if key == "flask":
                    cls.traces["flask2"] = request_traced(app)
            finally:
                app.stop()
                app.kill()
        env = sdk_apps.base_env(0, "ui-node", f"127.0.0.1:{cls.xrayd.udp_port}")
        p = subprocess.run(["node", os.path.join(harness.HERE, "test_ui_node_segments.js"), PAYLOAD], env=env,
                           capture_output=True, text=True, timeout=60, cwd=harness.HERE)
        assert p.returncode == 0, p.stderr
        cls.traces.update(json.loads(p.stdout))
        cls.client = boto3.client("xray", endpoint_url=cls.xrayd.endpoint, region_name=sh.REGION,
                                  aws_access_key_id=sh.DUMMY_ACCESS_KEY_ID,
                                  aws_secret_access_key=sh.DUMMY_SECRET_ACCESS_KEY,
                                  config=botocore.config.Config(retries={"max_attempts": 1}))
        # Wait until BatchGetTraces has every trace with all its segments (the apps' downstream calls).
        deadline = time.monotonic() + 20
        while True:
            got = {}
            ids = list(cls.traces.values())
            for i in range(0, len(ids), 5):
                for t in cls.client.batch_get_traces(TraceIds=ids[i:i + 5])["Traces"]:
                    got[t["Id"]] = [json.loads(s["Document"]) for s in t["Segments"]]
            ready = all(len(got.get(cls.traces[k], [])) >= 2 for k in ("flask", "flask2", "express")) and \
                all(got.get(cls.traces[k]) for k in ("injection", "nested"))
            if ready:
                cls.docs = got
                break
            assert time.monotonic() < deadline, f"traces not stored within 20 s: {sorted(got)} of {cls.traces}"
            time.sleep(0.2)

    @classmethod
    def _browse(cls):
        cfg = {
            "base": cls.xrayd.endpoint, "shots": SHOTS, "chromium": CHROMIUM, "traces": cls.traces, "payload": PAYLOAD,
            "filter": f'service("{FLASK}")', "map_click": FLASK,
            "rule": {"name": "ui-e2e-rule", "priority": 7, "rate": 0.25, "reservoir": 3, "service": FLASK},
            "group": {"name": "ui-e2e-group", "filter": f'service("{FLASK}")'},
        }
        p = subprocess.run(["node", os.path.join(harness.HERE, "test_ui_browser.mjs"), json.dumps(cfg)],
                           capture_output=True, text=True, timeout=150, cwd=harness.HERE)
        sys.stderr.write(p.stderr[-3000:])
        assert p.stdout.strip(), f"test_ui_browser.mjs printed nothing (exit {p.returncode})"
        cls.obs = json.loads(p.stdout.strip().splitlines()[-1])
        assert cls.obs.get("ok"), f"browser run failed after {cls.obs.get('steps')}: {cls.obs.get('error')}"

    # ---- the list and the filter

    def test_list_shows_every_trace_sent(self):
        self.assertTrue(set(self.traces.values()) <= set(self.obs["list"]), (self.traces, self.obs["list"]))

    def test_filter_narrows_and_survives_reload(self):
        want = {self.traces["flask"], self.traces["flask2"]}
        self.assertEqual(set(self.obs["filtered"]), want)
        self.assertEqual(set(self.obs["filtered_after_reload"]), want)
        self.assertIn("filter=service", self.obs["filtered_url"])

    def test_group_by_url_counts(self):
        rows = {r[0]: r[1] for r in self.obs["groups"]}
        self.assertEqual(len(rows), 1, rows)
        (url, count), = rows.items()
        self.assertTrue(url.startswith("http://127.0.0.1:") and url.endswith("/"), url)
        self.assertEqual(count, "2")

    def test_bad_filter_shows_the_api_error_in_place(self):
        status = None
        try:
            self.client.get_trace_summaries(StartTime=time.time() - 60, EndTime=time.time(),
                                            FilterExpression='service("unterminated')
        except self.client.exceptions.InvalidRequestException as e:
            status = e.response["Error"]["Message"]
        self.assertTrue(status, "the API accepted a bad filter")
        self.assertIn(status, self.obs["filter_error"])

    # ---- the waterfall

    def test_click_opens_the_waterfall_in_the_right_nesting(self):
        self.assertTrue(self.obs["waterfall_url"].endswith(f"/traces/{self.traces['flask']}"))
        docs = self.docs[self.traces["flask"]]
        root = next(d for d in docs if d["name"] == FLASK)
        down = next(d for d in docs if d["name"] == f"{FLASK}-downstream")
        remote = next(s for s in root["subsegments"] if s["id"] == down["parent_id"])
        rows = [(r["name"], r["depth"]) for r in self.obs["waterfall"]]
        self.assertEqual(rows[0], (FLASK, 0))
        self.assertIn((remote["name"], 1), rows)
        i = rows.index((remote["name"], 1))
        self.assertEqual(rows[i + 1], (f"{FLASK}-downstream", 2), rows)
        self.assertEqual(len(rows), sum(1 for d in docs for _ in sh.walk(d)), rows)
        self.assertEqual(set(self.obs["trace_map_nodes"]) >= {FLASK, f"{FLASK}-downstream"}, True, self.obs["trace_map_nodes"])

    def test_node_sdk_trace_nesting_fault_and_detail(self):
        rows = [(r["name"], r["depth"]) for r in self.obs["nested"]]
        self.assertEqual(rows, [("ui-node", 0), ("load-orders", 1), ("query-db", 2), ("parse-rows", 3)])
        faults = {r["name"] for r in self.obs["nested"] if r["fault"]}
        self.assertEqual(faults, {"ui-node", "query-db"})
        self.assertIn("SELECT * FROM orders WHERE id = ?", self.obs["sql_tab"])
        self.assertIn("db timeout", self.obs["exceptions_tab"])
        self.assertNotIn("parse-rows", self.obs["rows_after_collapse"])
        self.assertIn("c=", self.obs["collapsed_url"])

    def test_operation_percentiles_extension(self):
        status, out = self.xrayd.call("/xrayd/OperationPercentiles", {"TraceId": self.traces["flask"]})
        self.assertEqual(status, 200, out)
        ops = {o["Id"]: o for o in out["Operations"]}
        root = next(d for d in self.docs[self.traces["flask"]] if d["name"] == FLASK)
        self.assertEqual(ops[root["id"]]["Samples"], 2)  # flask and flask2: the same operation, within the hour
        self.assertIn(ops[root["id"]]["Percentile"], (50.0, 100.0))
        self.assertIn(f"of 2 calls of {FLASK} › {FLASK}", self.obs["detail_overview"])
        status, out = self.xrayd.call("/xrayd/OperationPercentiles", {"TraceId": self.traces["flask"], "WindowSeconds": "x"})
        self.assertEqual((status, out.get("__type")), (400, "InvalidRequestException"))

    def test_pasting_a_trace_id_opens_it(self):
        self.assertTrue(self.obs["paste_url"].endswith(f"/traces/{self.traces['flask']}"))

    # ---- the map

    def test_map_nodes_and_edges(self):
        nodes = set(self.obs["map_nodes"])
        for name in (FLASK, f"{FLASK}-downstream", EXPRESS, f"{EXPRESS}-downstream", "ui-node", "Clients"):
            self.assertIn(name, nodes)
        graph = self.client.get_service_graph(StartTime=time.time() - 3600, EndTime=time.time())["Services"]
        names = {s["ReferenceId"]: s["Name"] for s in graph}
        want = {(names[s["ReferenceId"]], names[e["ReferenceId"]]) for s in graph for e in s.get("Edges", [])}
        want |= {("Clients", s["Name"]) for s in graph if s.get("Root")}
        self.assertIn((FLASK, f"{FLASK}-downstream"), want)
        self.assertEqual({tuple(e) for e in self.obs["map_edges"]}, want)
        self.assertEqual(len(self.obs["map_nodes"]), len(graph) + 1)

    def test_map_node_click_shows_stats_and_filtered_traces(self):
        self.assertIn("requests", self.obs["map_panel"])
        self.assertIn("node=", self.obs["map_panel_url"])
        self.assertEqual(set(self.obs["map_traces"]), {self.traces["flask"], self.traces["flask2"]})

    # ---- sampling rules and groups

    def test_rule_created_in_the_ui_is_served_by_get_sampling_rules(self):
        rules = {r["SamplingRule"]["RuleName"]: r["SamplingRule"] for r in self.client.get_sampling_rules()["SamplingRuleRecords"]}
        self.assertIn("ui-e2e-rule", rules)
        r = rules["ui-e2e-rule"]
        self.assertEqual((r["Priority"], r["FixedRate"], r["ReservoirSize"], r["ServiceName"]), (7, 0.25, 3, FLASK))
        self.assertIn("ui-e2e-rule", self.obs["rules"])

    def test_invalid_rule_shows_the_api_validation_error(self):
        try:
            self.client.create_sampling_rule(SamplingRule={
                "RuleName": "ui-e2e-bad", "Priority": 7, "FixedRate": 7, "ReservoirSize": 1, "ServiceName": "*",
                "ServiceType": "*", "Host": "*", "HTTPMethod": "*", "URLPath": "*", "ResourceARN": "*", "Version": 1})
            message = None
        except self.client.exceptions.InvalidRequestException as e:
            message = e.response["Error"]["Message"]
        self.assertTrue(message)
        self.assertIn(message, self.obs["rule_error"])

    def test_group_created_in_the_ui_is_served_by_get_groups(self):
        groups = {g["GroupName"]: g for g in self.client.get_groups()["Groups"]}
        self.assertEqual(groups["ui-e2e-group"]["FilterExpression"], f'service("{FLASK}")')
        self.assertIn("ui-e2e-group", self.obs["groups_list"])
        self.assertTrue(self.obs["group_error"].strip())

    # ---- safety

    def test_injection_payload_renders_as_text(self):
        self.assertIn(PAYLOAD, self.obs["injection_names"])
        self.assertIn(f"{PAYLOAD} sub", self.obs["injection_names"])
        self.assertIn(PAYLOAD, self.obs["injection_title"])
        self.assertIn(PAYLOAD, self.obs["injection_url_cell"])
        self.assertTrue(self.obs["injection_map_has_node"])
        self.assertIsNone(self.obs["xss_fired"])
        self.assertIsNone(self.obs["xss_fired_trace"])
        self.assertEqual(self.obs["injected_elements"], 0)
        self.assertEqual(self.obs["injected_elements_trace"], 0)

    def test_no_console_errors(self):
        # A blocked inline script, a CSP violation or a failed asset would be reported here. The only
        # expected ones: the three 400s the API gave to the bad filter, rule and group the test submits.
        bad_request = "error: Failed to load resource: the server responded with a status of 400 (Bad Request)"
        self.assertEqual(self.obs["console"], [bad_request] * 3)

    def test_assets_gzip_csp_and_size(self):
        req = urllib.request.Request(self.xrayd.endpoint + "/", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(req, timeout=5) as r:
            csp = r.headers["Content-Security-Policy"]
            self.assertIn("script-src 'self'", csp)
            self.assertNotIn("unsafe-inline", csp)
            self.assertEqual(r.headers["X-Content-Type-Options"], "nosniff")
            self.assertEqual(r.headers["Content-Encoding"], "gzip")
            import gzip
            html = gzip.decompress(r.read()).decode()
        total = 0
        import re
        for path in re.findall(r'(?:src|href)="(/[^"]+)"', html):
            req = urllib.request.Request(self.xrayd.endpoint + path, headers={"Accept-Encoding": "gzip"})
            with urllib.request.urlopen(req, timeout=5) as r:
                body = r.read()
                self.assertEqual(r.headers["Content-Encoding"], "gzip", path)
                total += len(body)
                etag = r.headers["ETag"]
            req = urllib.request.Request(self.xrayd.endpoint + path, headers={"If-None-Match": etag})
            try:
                urllib.request.urlopen(req, timeout=5)
                self.fail("no 304 for a matching ETag")
            except urllib.error.HTTPError as e:
                self.assertEqual(e.code, 304)
        self.assertLess(total, 400 * 1024)

    def test_post_still_reaches_the_api(self):
        status, out = self.xrayd.call("/NoSuchOperation", {})
        self.assertEqual(status, 404)
        self.assertEqual(out.get("__type"), "UnknownOperationException")

    # ---- themes and layout

    def test_dark_theme_and_narrow_window(self):
        self.assertNotEqual(self.obs["dark_bg"], "rgb(247, 248, 250)")
        self.assertLessEqual(self.obs["narrow_overflow"], 0)
        self.assertGreater(self.obs["compare_rows"], 0)
        self.assertTrue(self.obs["compare_url"].endswith(f"/compare/{self.traces['flask']}/{self.traces['flask2']}"))
        for name in ("traces", "trace", "trace-detail", "map", "map-node", "sampling", "groups", "injection", "analytics",
                     "compare", "trace-dark", "map-dark", "traces-narrow"):
            self.assertTrue(os.path.getsize(os.path.join(SHOTS, f"{name}.png")) > 5000, name)


class SignedServe(sh.XraydServe):
    """xrayd serve that verifies SigV4 (--api-auth on): "up" is any HTTP answer, as unsigned calls get 403."""

    def _api_answers(self) -> bool:
        try:
            status, _ = self.call("/GetSamplingRules", {}, timeout=1)
            return status == 403
        except OSError:
            return False


class SignedApiTest(unittest.TestCase):
    """With --api-keys, the UI asks for a key, signs every call in the browser (WebCrypto) and keeps only a
    non-extractable key: the secret is in no storage a page script can read."""

    KEY_ID, SECRET = "AKIDXRAYDUITEST00001", "ui/e2e/secret/key/that/must/never/be/stored"

    def test_signed_calls_from_the_browser(self):
        xrayd = SignedServe(extra_args=["--api-auth", "on", "--api-keys", f"{self.KEY_ID}:{self.SECRET}"]).start()
        self.addCleanup(xrayd.cleanup)
        client = boto3.client("xray", endpoint_url=xrayd.endpoint, region_name=sh.REGION, aws_access_key_id=self.KEY_ID,
                              aws_secret_access_key=self.SECRET, config=botocore.config.Config(retries={"max_attempts": 1}))
        tid = sh.trace_id()
        client.put_trace_segments(TraceSegmentDocuments=[json.dumps(sh.segment(tid, "ui-signed"))])
        cfg = {"mode": "signed", "base": xrayd.endpoint, "shots": SHOTS, "chromium": CHROMIUM, "trace": tid,
               "key": {"id": self.KEY_ID, "secret": self.SECRET}, "rule": {"name": "ui-signed-rule"}}
        p = subprocess.run(["node", os.path.join(harness.HERE, "test_ui_browser.mjs"), json.dumps(cfg)],
                           capture_output=True, text=True, timeout=120, cwd=harness.HERE)
        sys.stderr.write(p.stderr[-3000:])
        obs = json.loads(p.stdout.strip().splitlines()[-1])
        self.assertTrue(obs.get("ok"), obs.get("error"))
        self.assertIn("MissingAuthenticationToken", obs["unsigned_error"])
        self.assertIn(tid, obs["signed_list"])
        rules = [r["SamplingRule"]["RuleName"] for r in client.get_sampling_rules()["SamplingRuleRecords"]]
        self.assertIn("ui-signed-rule", rules)
        st = obs["storage"]
        self.assertEqual(st["keyType"], "[object CryptoKey]")
        self.assertFalse(st["extractable"])
        self.assertEqual(st["exported"], "InvalidAccessError")
        self.assertEqual(st["fields"], ["accessKeyId", "region", "rootKey"])
        for where in ("local", "session", "record", "cookies"):
            self.assertNotIn(self.SECRET, st[where], where)


if __name__ == "__main__":
    take_args()
    harness.main()
