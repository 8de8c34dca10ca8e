#!/usr/bin/env python3
"""Grafana's X-Ray data source against `xrayd serve`: the exact X-Ray API calls the data source makes
for each of its query types, in its order, with its parameters and its pagination loops, issued with
boto3 (which parses every answer with the X-Ray service model, as aws-sdk-go-v2 does); then the
answers are read the way the data source reads them and checked against the segments sent.

Source of the call sequences: github.com/grafana/x-ray-datasource v2.17.1 (commit 5e15e7e0569a, the
newest at the time of writing), Go backend on aws-sdk-go-v2 and TypeScript frontend:

* pkg/datasource/datasource.go    QueryData dispatch by queryType; resource routes /groups /accounts
* pkg/datasource/CheckHealth.go   "Save & test": GetGroups({})
* pkg/datasource/getGroups.go     /groups resource (query editor, Insights "All"): GetGroups paginator
* pkg/datasource/getTraceSummaries.go   Trace List: GetTraceSummaries{StartTime, EndTime,
                                  FilterExpression if non-empty} paginator, stops at 1000 rows; reads
                                  Id, StartTime, Http.{HttpMethod,HttpStatus,HttpURL,ClientIp}
                                  (Http dereferenced: nil panics), Duration, Annotations
* pkg/datasource/getTrace.go      single trace (W3C ids rewritten to 1-xxxxxxxx-…): BatchGetTraces
                                  {TraceIds:[id]} and, concurrently, GetTraceGraph{TraceIds:[id]} paginator
* pkg/datasource/getServiceMap.go Service Map: GetServiceGraph{StartTime, EndTime, GroupName} paginator
* pkg/datasource/getAccounts.go   /accounts resource: GetServiceGraph{…, GroupName}, reads AccountId
* pkg/datasource/getTimeSeriesServiceStatistics.go  Trace Statistics: GetTimeSeriesServiceStatistics
                                  {StartTime, EndTime, EntitySelectorExpression if non-empty, Period =
                                  resolution (60 or 300)} paginator; per row EdgeSummaryStatistics else
                                  ServiceSummaryStatistics, fields reached by reflection (a missing
                                  ErrorStatistics/FaultStatistics panics), TotalResponseTime/TotalCount
* pkg/datasource/getInsights.go   Insights: GetInsightSummaries{StartTime, EndTime, States, GroupName}
                                  (one call, no pagination); group "All" → GetGroups then one per group
* pkg/datasource/getAnalytics.go  Trace Analytics (root cause, URL, user, status code): with no filter
                                  first GetTimeSeriesServiceStatistics{…, GroupName, Period: 60} paginator
                                  to count traces, then four GetTraceSummaries over the quarters of the
                                  range {TimeRangeType: Event, Sampling: true, SamplingStrategy FixedRate},
                                  each paged until its NextToken runs out; aggregates ErrorRootCauses,
                                  FaultRootCauses, ResponseTimeRootCauses, Http, Users
* src/XRayDataSource.ts           group FilterExpression prepended ("<group filter> AND <query>")
* src/utils/transform.ts          parseGraphResponse (service map / trace graph nodes and edges, from the
                                  Go-marshalled Services) and transformTraceResponse (trace spans)
* src/utils/links.ts              service map node/edge links: trace lists filtered by
                                  service(id(name: "N", type: "T")) / edge("A", "B") plus { ok|error|fault
                                  = true }, and the root cause analytics with the same filter

What the data source would choke on is checked where it would: a nil the Go code dereferences, a
missing array the frontend maps over. Requires boto3 (the test FAILS without it).

    python3 tests/e2e/test_serve_grafana.py --xrayd build/xrayd [-v]
"""

import datetime
import json
import sys
import time
import unittest

import harness
import serve_harness as sh
from serve_harness import known_bug

try:
    import boto3
    import botocore.config
except ImportError:  # reported by the tests, which then fail
    boto3 = None

UTC = datetime.timezone.utc
BULK_TRACES = 105  # more than one GetTraceSummaries page (xrayd pages by 100)


def ts(epoch: float) -> datetime.datetime:
    """A Grafana time range bound: millisecond precision, as query.TimeRange.From/To."""
    return datetime.datetime.fromtimestamp(round(epoch, 3), UTC)


def need(obj, *path):
    """obj[path…], failing where the data source's Go code would dereference a nil pointer."""
    cur = obj
    for p in path:
        if not isinstance(cur, dict) or cur.get(p) is None:
            raise AssertionError(f"Grafana's backend dereferences {'.'.join(path)}, which is missing in {obj!r:.300}")
        cur = cur[p]
    return cur


def array(obj, key):
    """obj[key] as the frontend uses it (.map/.reduce): a Go nil slice marshals to null and throws."""
    v = obj.get(key)
    if not isinstance(v, list):
        raise AssertionError(f"Grafana's frontend maps over {key}, which is {v!r} in {obj!r:.300}")
    return v


# --------------------------------------------------------------------------------------------
# The data source's calls, replayed with boto3


class GrafanaXray:
    """One method per data source operation, each making the calls pkg/datasource makes. `calls`
    records (operation, params) in order."""

    def __init__(self, endpoint: str):
        self.client = boto3.client(
            "xray", endpoint_url=endpoint, region_name=sh.REGION,
            aws_access_key_id=sh.DUMMY_ACCESS_KEY_ID, aws_secret_access_key=sh.DUMMY_SECRET_ACCESS_KEY,
            config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))
        self.calls = []

    def close(self):
        self.client.close()

    def call(self, op, **params):
        self.calls.append((op, params))
        return getattr(self.client, op)(**params)

    def pages(self, op, **params):
        """aws-sdk-go-v2's generated paginator: first page, then while NextToken is non-empty."""
        token, seen = None, set()
        while True:
            p = dict(params)
            if token is not None:
                p["NextToken"] = token
            page = self.call(op, **p)
            yield page
            token = page.get("NextToken")
            if not token:
                return
            if token in seen or len(seen) > 200:
                raise AssertionError(f"{op}: NextToken {token!r} repeats: the paginator would never end")
            seen.add(token)

    # CheckHealth.go
    def check_health(self):
        return self.call("get_groups")

    # getGroups.go: getGroupsFromXray
    def groups(self):
        return [g for page in self.pages("get_groups") for g in page.get("Groups", [])]

    # getTraceSummaries.go
    def trace_list(self, start, end, query=""):
        req = {"StartTime": ts(start), "EndTime": ts(end)}
        if query:
            req["FilterExpression"] = query
        rows = []
        for page in self.pages("get_trace_summaries", **req):
            for s in page["TraceSummaries"]:
                http = need(s, "Http")
                rows.append({
                    "Id": s.get("Id"), "Start Time": s.get("StartTime"), "Method": http.get("HttpMethod"),
                    "Response": http.get("HttpStatus"), "Response Time": s.get("Duration"),
                    "URL": http.get("HttpURL"), "Client IP": http.get("ClientIp"),
                    "Annotations": sum(len(v) for v in (s.get("Annotations") or {}).values()),
                })
            if len(rows) >= 1000:
                break
        return rows

    # getTrace.go (the two calls run concurrently there; order between them does not matter)
    def single_trace(self, trace_id):
        if len(trace_id) == 32 and "-" not in trace_id:  # W3C id → X-Ray id
            trace_id = f"1-{trace_id[:8]}-{trace_id[8:]}"
        out = self.call("batch_get_traces", TraceIds=[trace_id])
        graph = [svc for page in self.pages("get_trace_graph", TraceIds=[trace_id]) for svc in page.get("Services", [])]
        if not out["Traces"]:
            raise AssertionError(f"the data source reports 'trace not found' for {trace_id}")
        return out["Traces"][0], graph

    # getServiceMap.go
    def service_map(self, start, end, group):
        return [svc for page in self.pages("get_service_graph", StartTime=ts(start), EndTime=ts(end),
                                           GroupName=group["GroupName"])
                for svc in page.get("Services", [])]

    # getAccounts.go
    def accounts(self, start, end, group="Default"):
        return [{"Id": s["AccountId"]}
                for page in self.pages("get_service_graph", StartTime=ts(start), EndTime=ts(end), GroupName=group)
                for s in page.get("Services", []) if s.get("AccountId") not in (None, "all")]

    # getTimeSeriesServiceStatistics.go, all columns
    COLUMNS = [("ErrorStatistics.ThrottleCount", "Throttle Count"), ("ErrorStatistics.TotalCount", "Error Count"),
               ("FaultStatistics.TotalCount", "Fault Count"), ("OkCount", "Success Count"),
               ("TotalCount", "Total Count"), ("Computed.AverageResponseTime", "Average Response Time")]

    def trace_statistics(self, start, end, query="", resolution=60):
        req = {"StartTime": ts(start), "EndTime": ts(end), "Period": resolution}
        if query:
            req["EntitySelectorExpression"] = query
        frames = {label: [] for _, label in self.COLUMNS}
        for page in self.pages("get_time_series_service_statistics", **req):
            for st in page["TimeSeriesServiceStatistics"]:
                val = st.get("EdgeSummaryStatistics") or st.get("ServiceSummaryStatistics")
                if val is None:
                    continue
                for name, label in self.COLUMNS:
                    if name == "Computed.AverageResponseTime":
                        v = need(val, "TotalResponseTime") / need(val, "TotalCount")
                    else:
                        parts = name.split(".")
                        if len(parts) == 2:
                            v = need(val, parts[0]).get(parts[1])  # reflect.Indirect(nil).FieldByName panics
                        else:
                            v = val.get(name)
                    frames[label].append((st.get("Timestamp"), v))
        return frames

    # getInsights.go
    def insights(self, start, end, group, state="All"):
        states = None if state in ("All", "") else [state.upper()]
        names = [g.get("GroupName") for g in self.groups()] if group.get("GroupName") == "All" else [group.get("GroupName")]
        rows = []
        for name in names:
            req = {"StartTime": ts(start), "EndTime": ts(end)}
            if states:
                req["States"] = states
            if name is not None:
                req["GroupName"] = name
            out = self.call("get_insight_summaries", **req)
            for ins in out["InsightSummaries"]:
                root = need(ins, "RootCauseServiceId")
                top = need(ins, "TopAnomalousServices")[0]
                rows.append({"InsightId": ins.get("InsightId"), "Root cause service": f"{root.get('Name')} ({root.get('Type')})",
                             "Anomalous services": need(top, "ServiceId").get("Name"), "Group": ins.get("GroupName")})
        return rows

    # getAnalytics.go
    def analytics(self, start, end, query_type, query="", group=None):
        max_traces = 10000
        sampling = 1.0
        if query == "":
            count = 0
            req = {"StartTime": ts(start), "EndTime": ts(end), "Period": 60}
            if group and group.get("GroupName") is not None:
                req["GroupName"] = group["GroupName"]
            for page in self.pages("get_time_series_service_statistics", **req):
                for st in page["TimeSeriesServiceStatistics"]:
                    if st.get("ServiceSummaryStatistics") is not None:
                        count += need(st, "ServiceSummaryStatistics", "TotalCount")
                    elif st.get("EdgeSummaryStatistics") is not None:
                        count += need(st, "EdgeSummaryStatistics", "TotalCount")
            sampling = min(max_traces / count, 1) if count else 1.0
        quarter = (end - start) / 4
        requests = []
        for i in range(4):
            r = {"StartTime": ts(start + quarter * i), "EndTime": ts(start + quarter * (i + 1)),
                 "TimeRangeType": "Event", "Sampling": True,
                 "SamplingStrategy": {"Name": "FixedRate", "Value": sampling}}
            if query:
                r["FilterExpression"] = query
            requests.append(r)
        tokens = ["first"] * 4
        traces = []
        rounds = 0
        while any(tokens):
            rounds += 1
            if rounds > 100:
                raise AssertionError("analytics paging does not end")
            for i, req in enumerate(requests):
                if not tokens[i]:
                    continue
                if tokens[i] != "first":
                    req["NextToken"] = tokens[i]
                resp = self.call("get_trace_summaries", **req)
                traces.extend(resp["TraceSummaries"])
                tokens[i] = resp.get("NextToken") or ""
        return self._aggregate(query_type, traces), traces

    @staticmethod
    def _aggregate(query_type, traces):
        """DataProcessor.processSingleTrace: counts per key."""
        counts = {}

        def add(k):
            counts[k] = counts.get(k, 0) + 1

        def svc_key(s):
            return f"{need(s, 'Name')} ({need(s, 'Type')})"

        for t in traces:
            if query_type.startswith("getAnalyticsRootCause"):
                kind = ("ResponseTime" if "ResponseTime" in query_type else "Error" if "Error" in query_type else "Fault")
                causes = t.get(f"{kind}RootCauses") or []
                if not causes:
                    add("-")
                for c in causes:
                    services = c.get("Services") or []
                    if query_type.endswith("Service"):
                        add(svc_key(services[-1]))
                    elif query_type.endswith("Path"):
                        parts = []
                        for s in services:
                            key = svc_key(s)
                            if kind == "ResponseTime":
                                path = need(s, "EntityPath")
                                if not path:
                                    raise AssertionError(f"EntityPath[1:] of an empty EntityPath panics: {s!r}")
                                key += "".join(f" -> {need(p, 'Name')}" for p in path[1:])
                            else:
                                for p in s.get("EntityPath") or []:
                                    for e in p.get("Exceptions") or []:
                                        key += f" -> {need(e, 'Name') if kind == 'Error' else e.get('Name', 'unknown')}"
                            parts.append(key)
                        add(" => ".join(parts))
                    else:  # message
                        msgs = [e["Message"] for s in services for p in s.get("EntityPath") or []
                                for e in p.get("Exceptions") or [] if e.get("Message") is not None]
                        add(msgs[0] if msgs else "-")
            elif query_type == "getAnalyticsUrl":
                add((t.get("Http") or {}).get("HttpURL") or "-")
            elif query_type == "getAnalyticsStatusCode":
                status = (t.get("Http") or {}).get("HttpStatus")
                add(str(status) if status is not None else "-")
            elif query_type == "getAnalyticsUser":
                users = t.get("Users") or []
                if not users:
                    add("-")
                for u in users:
                    if u.get("UserName") is not None:
                        add(u["UserName"])
        return counts


# --------------------------------------------------------------------------------------------
# The frontend's reading of the Go-marshalled answers (src/utils/transform.ts)


def parse_graph_response(services, show_request_counts=False):
    """parseGraphResponse: {node name: stats} and {(source, target): stats}, computed as Grafana does."""
    nodes, edges, by_ref, pending = {}, {}, {}, []

    def pct(stats):
        total = stats.get("TotalCount") or 0
        err = stats.get("ErrorStatistics")
        fault = stats.get("FaultStatistics")
        return {
            "success": (stats.get("OkCount") or 0) / total if total else 0,
            "errors": (err["TotalCount"] - err["ThrottleCount"]) / total if err and total else 0,
            "faults": fault["TotalCount"] / total if fault and total else 0,
            "throttled": err["ThrottleCount"] / total if err and total else 0,
        }

    def avg_ms(stats):
        return stats["TotalResponseTime"] / stats["TotalCount"] * 1000 if stats.get("TotalResponseTime") and stats.get("TotalCount") else 0

    for svc in services:
        edge_list = array(svc, "Edges")
        source = svc if svc.get("SummaryStatistics") else (edge_list[0] if edge_list else None)
        if source is None or not isinstance(source.get("SummaryStatistics"), dict):
            raise AssertionError(f"node {svc.get('Name')}: no SummaryStatistics and no edge to take them from")
        stats = source["SummaryStatistics"]
        node = {"id": svc["ReferenceId"], "type": svc.get("Type"), "avg_ms": avg_ms(stats), **pct(stats)}
        if show_request_counts:
            node["requests"] = sum(h["Count"] for h in array(source, "ResponseTimeHistogram"))
        nodes[svc["Name"]] = node
        by_ref[svc["ReferenceId"]] = svc
        pending += [(svc, e) for e in edge_list]
    for source, e in pending:
        target = by_ref.get(e["ReferenceId"])
        if target is None:
            continue
        stats = e["SummaryStatistics"]
        p = pct(stats)
        if p["success"] == 1:
            main = f"Success {p['success'] * 100:.2f}%"
        else:
            nz = [(v, n) for v, n in ((p["faults"], "Faults"), (p["errors"], "Errors"), (p["throttled"], "Throttled")) if v]
            main = f"{nz[0][1]} {nz[0][0] * 100:.2f}%" if nz else "N/A"
        edge = {"main": main, "total": stats.get("TotalCount")}
        if show_request_counts:
            edge["requests"] = sum(h["Count"] for h in array(e, "ResponseTimeHistogram"))
        edges[(source["Name"], target["Name"])] = edge
    return nodes, edges


def trace_spans(trace):
    """transformTraceResponse, reduced to what identifies the spans: {span id: (parent span id,
    operation, service, duration ms, error tag, stack traces)}."""
    spans = {}

    def visit(doc, service, parent):
        dur = (doc["end_time"] - doc["start_time"]) * 1000 if doc.get("end_time") else 0
        err = bool(doc.get("error") or doc.get("fault") or doc.get("throttle"))
        stacks = [f"{e.get('type')}: {e.get('message')}" for e in (doc.get("cause") or {}).get("exceptions") or []]
        spans[doc["id"]] = (parent, doc["name"], service, round(dur, 3), err, stacks)
        for sub in doc.get("subsegments") or []:
            visit(sub, service, doc["id"])

    for seg in array(trace, "Segments"):
        doc = json.loads(seg["Document"])  # the frontend JSON.parses each Document
        parent = doc["name"] + str(doc.get("origin"))
        spans.setdefault(parent, (None, doc.get("origin") or doc["name"], doc["name"], 0, False, []))
        visit(doc, doc["name"], parent)
    return spans


# --------------------------------------------------------------------------------------------
# The traces


class Shop:
    """client → frontend (EC2) → backend, plus an inferred payments-db; three traces:
    A: GET /checkout, backend faults (500, PaymentError), frontend faults; calls payments-db too.
    B: GET /catalog, all OK, through backend.
    C: POST /cart, 404 error at the frontend only.
    And BULK_TRACES one-segment traces of a "worker" (ECS) for paging."""

    def __init__(self, base: float):
        self.base = base
        self.a, self.b, self.c = sh.trace_id(base), sh.trace_id(base), sh.trace_id(base)
        t = base - 60
        self.docs = []
        # A
        s_backend, s_db = sh.new_id(), sh.new_id()
        self.a_front = sh.segment(
            self.a, "frontend", start=t, duration=0.5, origin="AWS::EC2::Instance", fault=True, user="alice",
            http={"request": {"method": "GET", "url": "https://shop.example.com/checkout", "client_ip": "203.0.113.7",
                              "user_agent": "curl/8.5"}, "response": {"status": 500}},
            annotations={"tier": "gold", "cart_items": 3},
            aws={"ec2": {"instance_id": "i-0abc", "availability_zone": "eu-west-1a"}},
            subsegments=[
                {"id": s_backend, "name": "backend", "namespace": "remote", "start_time": t + 0.05,
                 "end_time": t + 0.4, "fault": True,
                 "http": {"request": {"method": "POST", "url": "http://backend.internal/pay"}, "response": {"status": 500}}},
                {"id": s_db, "name": "payments-db", "namespace": "remote", "start_time": t + 0.41, "end_time": t + 0.45,
                 "http": {"request": {"method": "GET", "url": "http://payments-db.internal/q"}, "response": {"status": 200}}},
            ])
        self.a_back = sh.segment(
            self.a, "backend", start=t + 0.06, duration=0.3, parent_id=s_backend, fault=True,
            http={"request": {"method": "POST", "url": "http://backend.internal/pay"}, "response": {"status": 500}},
            annotations={"region_code": "eu"},
            cause={"working_directory": "/srv", "exceptions": [
                {"id": sh.new_id(), "type": "PaymentError", "message": "card declined", "remote": False}]})
        self.s_backend, self.s_db = s_backend, s_db
        # B
        s_b = sh.new_id()
        self.b_front = sh.segment(
            self.b, "frontend", start=t + 10, duration=0.2, origin="AWS::EC2::Instance",
            http={"request": {"method": "GET", "url": "https://shop.example.com/catalog", "client_ip": "198.51.100.2"},
                  "response": {"status": 200}},
            annotations={"tier": "silver"},
            subsegments=[{"id": s_b, "name": "backend", "namespace": "remote", "start_time": t + 10.02,
                          "end_time": t + 10.15}])
        self.b_back = sh.segment(self.b, "backend", start=t + 10.03, duration=0.1, parent_id=s_b,
                                 http={"request": {"method": "GET", "url": "http://backend.internal/items"},
                                       "response": {"status": 200}})
        # C
        self.c_front = sh.segment(
            self.c, "frontend", start=t + 20, duration=0.05, origin="AWS::EC2::Instance", error=True, user="bob",
            http={"request": {"method": "POST", "url": "https://shop.example.com/cart", "client_ip": "203.0.113.7"},
                  "response": {"status": 404}})
        self.docs += [self.a_front, self.a_back, self.b_front, self.b_back, self.c_front]
        self.bulk = []
        for i in range(BULK_TRACES):
            tid = sh.trace_id(base)
            self.bulk.append(tid)
            self.docs.append(sh.segment(tid, "worker", start=t + 30 + i * 0.01, duration=0.01,
                                        origin="AWS::ECS::Container"))

    def ids(self):
        out = {}
        for d in self.docs:
            out.setdefault(d["trace_id"], set()).update(n["id"] for n, _ in sh.walk(d))
        return out


class GrafanaDataSourceTest(unittest.TestCase):
    """One xrayd serve, one data set; each test replays one of the data source's query types."""

    @classmethod
    def setUpClass(cls):
        if boto3 is None:
            raise AssertionError(f"{sys.executable} has no boto3: this test replays the data source's calls with it")
        cls.xrayd = sh.XraydServe().start()
        try:
            cls.shop = Shop(sh.now())
            sh.send_udp(cls.xrayd.udp_port, cls.shop.docs)
            cls.xrayd.wait_for_segments(cls.shop.ids())
            # A group an operator made (not a data source call): only the shop's traces.
            status, out = cls.xrayd.call("/CreateGroup", {"GroupName": "shop", "FilterExpression": 'service("frontend")'})
            assert status == 200, out
            cls.start = cls.shop.base - 600  # the dashboard's time range: the last 10 minutes
            cls.end = sh.now() + 1
        except BaseException:
            cls.xrayd.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.xrayd.cleanup()

    def setUp(self):
        self.ds = GrafanaXray(self.xrayd.endpoint)

    def tearDown(self):
        self.ds.close()
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is not None and any(t is self for t, _ in result.failures + result.errors):
            print(f"\ncalls made: {[op for op, _ in self.ds.calls]}\n--- xrayd log ---\n{self.xrayd.log_tail(40)}",
                  file=sys.stderr)
        self.assertTrue(self.xrayd.alive(), "xrayd serve died")

    # ---- health check and groups

    def test_check_health_and_groups_resource(self):
        out = self.ds.check_health()
        self.assertIn("Groups", out)
        groups = {g["GroupName"]: g for g in self.ds.groups()}
        self.assertEqual(set(groups), {"Default", "shop"})
        # useInitQuery picks "Default" by GroupName; getNewGroup matches saved queries by GroupARN and
        # processRequest prepends FilterExpression.
        self.assertTrue(groups["Default"]["GroupARN"].startswith("arn:aws:xray:"), groups["Default"])
        self.assertNotEqual(groups["Default"]["GroupARN"], groups["shop"]["GroupARN"])
        self.assertNotIn("FilterExpression", groups["Default"])
        self.assertEqual(groups["shop"]["FilterExpression"], 'service("frontend")')

    # ---- Trace List

    def test_trace_list(self):
        shop = self.shop
        rows = self.ds.trace_list(self.start, self.end)
        ids = [r["Id"] for r in rows]
        self.assertEqual(len(ids), len(set(ids)), "a trace listed twice across pages")
        self.assertEqual(set(ids), {shop.a, shop.b, shop.c, *shop.bulk})
        self.assertGreater(sum(op == "get_trace_summaries" for op, _ in self.ds.calls), 1, "no second page was needed")
        by_id = {r["Id"]: r for r in rows}
        a = by_id[shop.a]
        self.assertEqual((a["Method"], a["Response"], a["URL"], a["Client IP"]),
                         ("GET", 500, "https://shop.example.com/checkout", "203.0.113.7"))
        self.assertAlmostEqual(a["Response Time"], 0.5, places=3)
        self.assertAlmostEqual(a["Start Time"].timestamp(), shop.a_front["start_time"], places=3)
        self.assertEqual(a["Annotations"], 3)  # tier, cart_items (frontend) + region_code (backend)
        c = by_id[shop.c]
        self.assertEqual((c["Method"], c["Response"], c["Annotations"]), ("POST", 404, 0))
        w = by_id[shop.bulk[0]]
        self.assertEqual((w["Method"], w["Response"], w["URL"]), (None, None, None))

    def test_trace_list_with_group_and_filter(self):
        """The query editor with group "shop" and a query: the frontend sends
        '<group filter> AND <query>' as FilterExpression."""
        shop = self.shop
        group = next(g for g in self.ds.groups() if g["GroupName"] == "shop")
        rows = self.ds.trace_list(self.start, self.end, group["FilterExpression"])
        self.assertEqual({r["Id"] for r in rows}, {shop.a, shop.b, shop.c})
        rows = self.ds.trace_list(self.start, self.end, group["FilterExpression"] + ' AND annotation.tier = "gold"')
        self.assertEqual([r["Id"] for r in rows], [shop.a])
        rows = self.ds.trace_list(self.start, self.end, group["FilterExpression"] + " AND http.status = 404")
        self.assertEqual([r["Id"] for r in rows], [shop.c])

    # ---- single trace

    def test_single_trace(self):
        shop = self.shop
        trace, graph = self.ds.single_trace(shop.a)
        self.assertEqual(trace["Id"], shop.a)
        self.assertAlmostEqual(trace["Duration"], 0.5, places=3)
        spans = trace_spans(trace)
        front, back = shop.a_front, shop.a_back
        self.assertEqual(set(spans), {"frontendAWS::EC2::Instance", "backendNone", front["id"], back["id"],
                                      shop.s_backend, shop.s_db})
        self.assertEqual(spans[front["id"]][:5], ("frontendAWS::EC2::Instance", "frontend", "frontend", 500.0, True))
        self.assertEqual(spans[shop.s_backend][:3], (front["id"], "backend", "frontend"))
        self.assertEqual(spans[back["id"]][:4], ("backendNone", "backend", "backend", 300.0))
        self.assertEqual(spans[back["id"]][5], ["PaymentError: card declined"])
        self.assertFalse(spans[shop.s_db][4])
        # The trace graph panel next to it (showRequestCounts: the histogram counts are shown).
        nodes, edges = parse_graph_response(graph, show_request_counts=True)
        self.assertEqual(set(nodes), {"frontend", "backend", "payments-db"})
        self.assertEqual({n: v["requests"] for n, v in nodes.items()}, {"frontend": 1, "backend": 1, "payments-db": 1})
        self.assertEqual(nodes["frontend"]["type"], "AWS::EC2::Instance")
        self.assertEqual(nodes["backend"]["faults"], 1)
        self.assertAlmostEqual(nodes["backend"]["avg_ms"], 300, places=1)
        self.assertEqual(set(edges), {("frontend", "backend"), ("frontend", "payments-db")})
        self.assertEqual(edges[("frontend", "backend")], {"main": "Faults 100.00%", "total": 1, "requests": 1})
        self.assertEqual(edges[("frontend", "payments-db")], {"main": "Success 100.00%", "total": 1, "requests": 1})

    def test_single_trace_w3c_id_and_missing_trace(self):
        shop = self.shop
        w3c = shop.b[2:10] + shop.b[11:]
        trace, graph = self.ds.single_trace(w3c)
        self.assertEqual(trace["Id"], shop.b)
        self.assertEqual({s["Name"] for s in graph}, {"frontend", "backend"})
        with self.assertRaisesRegex(AssertionError, "trace not found"):
            self.ds.single_trace(sh.trace_id())
        self.assertEqual(self.ds.calls[-1], ("get_trace_graph", {"TraceIds": [self.ds.calls[-2][1]["TraceIds"][0]]}))

    # ---- Service Map

    def test_service_map(self):
        groups = self.ds.groups()
        default = next(g for g in groups if g["GroupName"] == "Default")
        services = self.ds.service_map(self.start, self.end, default)
        nodes, edges = parse_graph_response(services)
        self.assertEqual(set(nodes), {"frontend", "backend", "payments-db", "worker"})
        f = nodes["frontend"]
        self.assertEqual(f["type"], "AWS::EC2::Instance")
        self.assertEqual((f["success"], f["errors"], f["faults"]), (1 / 3, 1 / 3, 1 / 3))
        self.assertAlmostEqual(f["avg_ms"], (500 + 200 + 50) / 3, places=1)
        self.assertEqual(nodes["backend"]["faults"], 0.5)
        self.assertEqual(nodes["worker"]["success"], 1)
        self.assertEqual(nodes["payments-db"]["type"], "remote")
        self.assertEqual(set(edges), {("frontend", "backend"), ("frontend", "payments-db")})
        self.assertEqual(edges[("frontend", "backend")], {"main": "Faults 50.00%", "total": 2})
        self.assertEqual(edges[("frontend", "payments-db")], {"main": "Success 100.00%", "total": 1})
        by_name = {s["Name"]: s for s in services}
        self.assertTrue(by_name["frontend"]["Root"])
        self.assertEqual(sum(h["Count"] for h in by_name["frontend"]["ResponseTimeHistogram"]), 3)
        # tracesPerMinute divides by EndTime - StartTime: both must be there.
        self.assertLess(by_name["frontend"]["StartTime"], by_name["frontend"]["EndTime"])

        # The group "shop" (filter service("frontend")): the worker's traces are not in its map.
        shop = next(g for g in groups if g["GroupName"] == "shop")
        nodes, edges = parse_graph_response(self.ds.service_map(self.start, self.end, shop))
        self.assertEqual(set(nodes), {"frontend", "backend", "payments-db"})
        self.assertEqual(edges[("frontend", "backend")]["total"], 2)

        # /accounts resource (cross-account toggle): answers; xrayd keeps no account ids.
        self.assertEqual(self.ds.accounts(self.start, self.end), [])

    def test_service_map_links(self):
        """The node and edge links on the service map: trace lists and root cause analytics filtered
        by the node's name and type (as the map showed them) or by the edge."""
        shop = self.shop
        nodes, _ = parse_graph_response(self.ds.service_map(self.start, self.end, {"GroupName": "Default"}))

        def node_query(name):
            return f'service(id(name: "{name}", type: "{nodes[name]["type"]}"))'

        ids = lambda q: {r["Id"] for r in self.ds.trace_list(self.start, self.end, q)}  # noqa: E731
        self.assertEqual(ids(node_query("frontend")), {shop.a, shop.b, shop.c})
        self.assertEqual(ids(node_query("frontend") + " { ok = true }"), {shop.b})
        self.assertEqual(ids(node_query("frontend") + " { error = true }"), {shop.c})
        self.assertEqual(ids(node_query("frontend") + " { fault = true }"), {shop.a})
        self.assertEqual(ids(node_query("backend")), {shop.a, shop.b})
        self.assertEqual(ids(node_query("worker")), set(shop.bulk))
        self.assertEqual(ids('edge("frontend", "backend")'), {shop.a, shop.b})
        self.assertEqual(ids('edge("frontend", "backend") { fault = true }'), {shop.a})

        counts, traces = self.ds.analytics(self.start, self.end, "getAnalyticsRootCauseFaultService",
                                           node_query("frontend"))
        self.assertEqual(sorted(t["Id"] for t in traces), sorted([shop.a, shop.b, shop.c]))
        self.assertEqual(counts, {"backend (service)": 1, "-": 2})
        counts, _ = self.ds.analytics(self.start, self.end, "getAnalyticsRootCauseErrorService", node_query("frontend"))
        self.assertEqual(counts, {"frontend (AWS::EC2::Instance)": 1, "-": 2})
        counts, _ = self.ds.analytics(self.start, self.end, "getAnalyticsRootCauseResponseTimeService",
                                      node_query("frontend"))
        self.assertEqual(sum(counts.values()), 3)

    def test_service_map_link_of_inferred_node(self):
        """The links on an inferred node (a remote call whose callee sent no segment)."""
        nodes, _ = parse_graph_response(self.ds.service_map(self.start, self.end, {"GroupName": "Default"}))
        query = f'service(id(name: "payments-db", type: "{nodes["payments-db"]["type"]}"))'
        self.assertEqual({r["Id"] for r in self.ds.trace_list(self.start, self.end, query)}, {self.shop.a})

    # ---- Trace Statistics

    def test_trace_statistics(self):
        def totals(frames):
            return {label: sum(v or 0 for _, v in frames[label]) for label in frames if label != "Average Response Time"}

        # A service's statistics (the query a service map link or a user would write).
        for resolution in (60, 300):
            frames = self.ds.trace_statistics(self.start, self.end, 'service("frontend")', resolution)
            self.assertEqual(totals(frames), {"Throttle Count": 0, "Error Count": 1, "Fault Count": 1,
                                              "Success Count": 1, "Total Count": 3}, resolution)
            for t, _ in frames["Total Count"]:
                self.assertEqual(t.timestamp() % resolution, 0, "bucket timestamps are not period aligned")
        frames = self.ds.trace_statistics(self.start, self.end, 'service(id(name: "backend"))')
        self.assertEqual(totals(frames)["Total Count"], 2)
        self.assertEqual(totals(frames)["Fault Count"], 1)
        # An edge's.
        frames = self.ds.trace_statistics(self.start, self.end, 'edge("frontend", "backend")')
        self.assertEqual(totals(frames), {"Throttle Count": 0, "Error Count": 0, "Fault Count": 1,
                                          "Success Count": 1, "Total Count": 2})
        # Average Response Time per bucket, weighted back by the bucket's count: (0.3 + 0.1) / 2.
        counts = dict(frames["Total Count"])
        self.assertEqual(set(counts), {t for t, _ in frames["Average Response Time"]})
        self.assertAlmostEqual(sum(v * counts[t] for t, v in frames["Average Response Time"]) / 2, 0.2, places=3)
        # No selector: requests entering the system, one per trace.
        frames = self.ds.trace_statistics(self.start, self.end)
        self.assertEqual(totals(frames)["Total Count"], 3 + BULK_TRACES)

    # ---- Insights

    def test_insights(self):
        groups = self.ds.groups()
        default = next(g for g in groups if g["GroupName"] == "Default")
        for state in ("All", "Active", "Closed"):
            self.assertEqual(self.ds.insights(self.start, self.end, default, state), [])
        # Group "All" (the editor's dummy group): GetGroups, then one GetInsightSummaries per group.
        n = len(self.ds.calls)
        self.assertEqual(self.ds.insights(self.start, self.end, {"GroupName": "All", "GroupARN": "All"}), [])
        ops = [(op, p.get("GroupName")) for op, p in self.ds.calls[n:]]
        self.assertEqual(ops, [("get_groups", None), ("get_insight_summaries", "Default"),
                               ("get_insight_summaries", "shop")])

    # ---- Trace Analytics

    def test_trace_analytics(self):
        shop = self.shop
        default = {"GroupName": "Default"}
        counts, traces = self.ds.analytics(self.start, self.end, "getAnalyticsStatusCode", "", default)
        self.assertEqual(self.ds.calls[0][0], "get_time_series_service_statistics")  # the trace count
        self.assertEqual(len(traces), 3 + BULK_TRACES)
        self.assertEqual(counts, {"500": 1, "200": 1, "404": 1, "-": BULK_TRACES})
        counts, _ = self.ds.analytics(self.start, self.end, "getAnalyticsUrl", 'service("frontend")')
        self.assertEqual(counts, {"https://shop.example.com/checkout": 1, "https://shop.example.com/catalog": 1,
                                  "https://shop.example.com/cart": 1})
        counts, _ = self.ds.analytics(self.start, self.end, "getAnalyticsUser", 'service("frontend")')
        self.assertEqual(counts, {"alice": 1, "bob": 1, "-": 1})
        q = 'service("frontend")'
        self.assertEqual(self.ds.analytics(self.start, self.end, "getAnalyticsRootCauseFaultPath", q)[0],
                         {"frontend (AWS::EC2::Instance) => backend (service) -> PaymentError": 1, "-": 2})
        self.assertEqual(self.ds.analytics(self.start, self.end, "getAnalyticsRootCauseFaultMessage", q)[0],
                         {"card declined": 1, "-": 2})
        self.assertEqual(self.ds.analytics(self.start, self.end, "getAnalyticsRootCauseErrorMessage", q)[0],
                         {"-": 3})
        rt = self.ds.analytics(self.start, self.end, "getAnalyticsRootCauseResponseTimePath", q)[0]
        self.assertEqual(sum(rt.values()), 3)
        # Group "shop" (filter prepended, GroupName for the count): the worker's traces are out.
        counts, traces = self.ds.analytics(self.start, self.end, "getAnalyticsStatusCode", 'service("frontend")',
                                           {"GroupName": "shop"})
        self.assertEqual(sorted(t["Id"] for t in traces), sorted([shop.a, shop.b, shop.c]))


if __name__ == "__main__":
    harness.main()
