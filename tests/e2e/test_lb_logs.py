#!/usr/bin/env python3
"""Load-balancer access logs joined to traces, end to end (issue #17).

The article's setup without AWS: its Flask app (flask_hello.py with aws_xray_sdk's XRayMiddleware,
service "SimpleApp") sends its segments to `xrayd serve`; a client calls it with the X-Amzn-Trace-Id
an Application Load Balancer adds (a Root, no Parent). Afterwards — as S3 delivers ALB logs minutes
late — an access-log line carrying that trace id lands in a directory xrayd reads (`--lb-logs DIR`,
gzip, as ELB writes them), next to a 502 the load balancer answered alone. Read back with boto3:

  BatchGetTraces   the load balancer's segment (origin AWS::ElasticLoadBalancingV2::LoadBalancer,
                   its target as a remote subsegment) and SimpleApp's segment as its child (parent_id
                   = the target subsegment's id), SimpleApp's downstream call still under SimpleApp.
  GetServiceGraph  LB node → SimpleApp edge (root at the LB); the target address is a node only
                   through the 502 (the target that never answered).
  GetTraceSummaries  `service("<lb>") { fault }` finds the 502 trace and only it.
  restart          the same data directory: the log file is not read again (state file).

The S3 source against moto's S3 server (a subprocess on a free port, signatures and IAM checked): objects under a prefix
listed with ListObjectsV2 and fetched with GetObject (SigV4-signed with the test credentials), a
malformed line counted, an object added later picked up at the next poll, nothing read twice after a
restart.

    python3 tests/e2e/test_lb_logs.py --xrayd build/xrayd [-v]
"""

import gzip
import json
import os
import re
import shutil
import socket
import string
import subprocess
import sys
import tempfile
import time

import harness
import sdk_apps
import serve_harness as sh

try:
    import boto3
    import botocore.config
except ImportError:
    boto3 = None

LB_NAME = "k8s-default-flaskapp-25042181e0"
ELB_FIELD = f"app/{LB_NAME}/298318111abc0def"
SERVICE = "SimpleApp"
ALB_ORIGIN = "AWS::ElasticLoadBalancingV2::LoadBalancer"


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int(round((t % 1) * 1e6) % 1000000)


def alb_line(tid: str, start: float, end: float, target: str, elb_status: int, target_status,
             method="GET", url="http://k8s.example.com:80/", user_agent="curl/8.5.0", client="203.0.113.7:51234"):
    """One ALB access-log entry in AWS's documented format (every field, 30 of them)."""
    tpt = "-1" if target_status == "-" else "%.3f" % max(0.0, end - start - 0.002)
    return (f'http {iso(end)} {ELB_FIELD} {client} {target or "-"} 0.001 {tpt} 0.000 {elb_status} {target_status} '
            f'120 {345 if target_status != "-" else 0} "{method} {url} HTTP/1.1" "{user_agent}" - - '
            f'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/k8s-default-flaskapp/73e2d6bc24d8a067 '
            f'"Root={tid}" "-" "-" 1 {iso(start)} "forward" "-" "{"-" if target_status != "-" else "TargetConnectionErrorAll"}" '
            f'"{target or "-"}" "{target_status}" "-" "-" TID_1234abcd5678ef90')


def xray_client(endpoint: str):
    return boto3.client("xray", endpoint_url=endpoint, region_name=sh.REGION,
                        aws_access_key_id=sh.DUMMY_ACCESS_KEY_ID, aws_secret_access_key=sh.DUMMY_SECRET_ACCESS_KEY,
                        config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))


def documents(xrayd, tid: str) -> list:
    status, out = xrayd.call("/Traces", {"TraceIds": [tid]})
    assert status == 200, out
    return [json.loads(s["Document"]) for t in out.get("Traces", []) for s in t["Segments"]]


def wait_for(what: str, fn, timeout: float = 20.0, xrayd=None):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s\n{xrayd.log_tail() if xrayd else ''}")
        time.sleep(0.2)


def lb_segment(docs):
    return next((d for d in docs if d.get("origin") == ALB_ORIGIN), None)


def objects_read_at_stop(xrayd) -> int:
    """SIGTERM, then the 'LB logs: N objects read' count of the last run."""
    xrayd.terminate()
    with open(xrayd.log_path, encoding="utf-8", errors="replace") as f:
        counts = re.findall(r"LB logs: (\d+) objects read", f.read())
    assert counts, f"no LB counters logged at shutdown:\n{xrayd.log_tail()}"
    return int(counts[-1])


class LbLogsFromDirectory(sh.ServeTestCase):
    def setUp(self):
        if boto3 is None:
            self.fail("boto3 is missing for this python3: the traces are read back with it")
        self._t0 = time.monotonic()
        self.servers = []
        self.logs = tempfile.mkdtemp(prefix="xrayd-lb-logs-")
        self.addCleanup(shutil.rmtree, self.logs, True)
        self.xrayd = self.start_serve(extra_args=["--lb-logs", self.logs, "--lb-logs-poll", "1"])
        port = harness.free_tcp_port()
        env = sdk_apps.base_env(port, SERVICE, f"127.0.0.1:{self.xrayd.udp_port}")
        env["XRAY_CENTRALIZED_SAMPLING"] = "false"
        self.app = sdk_apps.App(sdk_apps.python_command(), env, port, os.path.join(self.xrayd.dir, "flask.log"))
        self.addCleanup(self.app.kill)
        self.xray = xray_client(self.xrayd.endpoint)
        self.addCleanup(self.xray.close)

    def test_flask_trace_joined_under_the_load_balancer(self):
        tid = sh.trace_id()
        t0 = time.time()
        # What the ALB sends on: its X-Amzn-Trace-Id (Root; the client asked for sampling).
        status, body, _ = self.app.get("/", {"X-Amzn-Trace-Id": f"Root={tid};Sampled=1"})
        t1 = time.time()
        self.assertEqual(status, 200)
        self.assertIn(tid, body)
        app_docs = wait_for("SimpleApp's segments", lambda: [d for d in documents(self.xrayd, tid)
                                                             if d.get("name") == SERVICE], xrayd=self.xrayd)
        self.assertNotIn("parent_id", app_docs[0], "SimpleApp's segment has no parent before the log arrives")

        # Minutes later in real life: the log file with this request and a 502 the LB answered alone.
        fault_tid = sh.trace_id()
        target = f"127.0.0.1:{self.app.port}"
        lines = [alb_line(tid, t0 - 0.001, t1 + 0.001, target, 200, 200),
                 alb_line(fault_tid, t1, t1 + 0.05, target, 502, "-")]
        path = os.path.join(self.logs, "123456789012_elasticloadbalancing_us-east-1_app.k8s_20261206T1200Z_10.0.0.1_x.log.gz")
        with gzip.open(path + ".tmp", "wt") as f:
            f.write("\n".join(lines) + "\n")
        os.rename(path + ".tmp", path)

        docs = wait_for("the LB segment", lambda: (lambda d: d if lb_segment(d) else None)(documents(self.xrayd, tid)),
                        xrayd=self.xrayd)
        # BatchGetTraces with boto3: client → LB → SimpleApp → SimpleApp-downstream.
        traces = self.xray.batch_get_traces(TraceIds=[tid])["Traces"]
        self.assertEqual(len(traces), 1)
        docs = [json.loads(s["Document"]) for s in traces[0]["Segments"]]
        lb = lb_segment(docs)
        self.assertEqual(lb["name"], LB_NAME)
        self.assertNotIn("parent_id", lb)
        self.assertEqual(lb["http"]["request"]["client_ip"], "203.0.113.7")
        self.assertEqual(lb["http"]["response"]["status"], 200)
        target_sub = lb["subsegments"][0]
        self.assertEqual(target_sub["name"], target)
        self.assertEqual(target_sub["namespace"], "remote")
        app = next(d for d in docs if d.get("name") == SERVICE)
        self.assertEqual(app.get("parent_id"), target_sub["id"], "SimpleApp joined under the LB's target")
        downstream = next(d for d in docs if d.get("name") == SERVICE + "-downstream")
        self.assertNotEqual(downstream.get("parent_id"), target_sub["id"])

        # GetServiceGraph: LB (root) → SimpleApp, no node for the target address.
        graph = self.xray.get_service_graph(StartTime=t0 - 60, EndTime=time.time() + 5)["Services"]
        by_ref = {s["ReferenceId"]: s for s in graph}
        lb_node = next(s for s in graph if s["Name"] == LB_NAME)
        self.assertEqual(lb_node["Type"], ALB_ORIGIN)
        self.assertTrue(lb_node["Root"])
        self.assertIn(SERVICE, [by_ref[e["ReferenceId"]]["Name"] for e in lb_node["Edges"]])
        # The target appears as a node of its own only through the 502 (it never answered); the joined
        # request went to SimpleApp, not to an inferred node.
        target_node = next(s for s in graph if s["Name"] == target)
        self.assertEqual(target_node["SummaryStatistics"]["TotalCount"], 1)
        self.assertEqual(target_node["SummaryStatistics"]["FaultStatistics"]["TotalCount"], 1)
        app_node = next(s for s in graph if s["Name"] == SERVICE)
        self.assertFalse(app_node["Root"], "SimpleApp is called by the LB now")
        # GetTraceGraph reads the same.
        tgraph = self.xray.get_trace_graph(TraceIds=[tid])["Services"]
        tlb = next(s for s in tgraph if s["Name"] == LB_NAME)
        self.assertIn(SERVICE, [next(x for x in tgraph if x["ReferenceId"] == e["ReferenceId"])["Name"] for e in tlb["Edges"]])

        # The filter language: the LB's own 502 and nothing else.
        found = self.xray.get_trace_summaries(StartTime=t0 - 60, EndTime=time.time() + 5,
                                              FilterExpression=f'service("{LB_NAME}") {{ fault }}')["TraceSummaries"]
        self.assertEqual([s["Id"] for s in found], [fault_tid])
        fault_docs = documents(self.xrayd, fault_tid)
        self.assertTrue(lb_segment(fault_docs)["fault"])

        # Restart on the same data directory: the file is remembered, not read again.
        self.assertGreaterEqual(objects_read_at_stop(self.xrayd), 1)
        again = self.start_serve(data_dir=self.xrayd.data_dir, extra_args=["--lb-logs", self.logs, "--lb-logs-poll", "1"])
        time.sleep(2.5)  # two directory polls
        self.assertEqual(objects_read_at_stop(again), 0)


class LbLogsFromS3(sh.ServeTestCase):
    """moto's S3 server with authentication on (INITIAL_NO_AUTH_ACTION_COUNT): after the IAM calls that
    set it up, every request's SigV4 signature is verified and its action checked against the
    caller's IAM policies. xrayd's user holds only deploy/iam/lb-logs-read-policy.json."""

    BUCKET = "ops-1-28-devops-monitoring-ops-alb-logs"
    PREFIX = "AWSLogs/123456789012/elasticloadbalancing/us-east-1/"
    # The source's prefix. Without '/': moto's signature check decodes a %2F in the query before
    # computing the canonical request (botocore's own ListObjectsV2 with such a prefix is refused
    # the same way), so a prefix with '/' cannot be checked against moto with authentication on.
    SOURCE_PREFIX = "AWSLogs"

    def setUp(self):
        if boto3 is None:
            self.fail("boto3 is missing for this python3")
        self._t0 = time.monotonic()
        self.servers = []
        port = harness.free_tcp_port()
        moto_dir = tempfile.mkdtemp(prefix="xrayd-moto-")
        self.addCleanup(shutil.rmtree, moto_dir, True)
        self.moto_log = open(os.path.join(moto_dir, "moto.log"), "wb")
        self.addCleanup(self.moto_log.close)
        # The six IAM calls below are the unauthenticated ones; everything after is checked.
        self.moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                     env=dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="6"),
                                     stdout=self.moto_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.addCleanup(self.stop_moto)
        self.s3_endpoint = f"http://127.0.0.1:{port}"
        wait_for("moto's S3 server", lambda: self.moto_answers(port), timeout=30)
        iam = boto3.client("iam", endpoint_url=self.s3_endpoint, region_name="us-east-1",
                           aws_access_key_id="AKIDMOTOSETUP", aws_secret_access_key="moto-setup")
        with open(os.path.join(harness.REPO, "deploy", "iam", "lb-logs-read-policy.json")) as f:
            read_policy = string.Template(f.read()).substitute(LOG_BUCKET=self.BUCKET, LOG_PREFIX=self.SOURCE_PREFIX)
        keys = {}
        for user, policy in (("setup", json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})), ("xrayd", read_policy)):
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=policy)
            keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
        self.reader_env = {"AWS_ACCESS_KEY_ID": keys["xrayd"]["AccessKeyId"],
                           "AWS_SECRET_ACCESS_KEY": keys["xrayd"]["SecretAccessKey"], "AWS_SESSION_TOKEN": ""}
        self.s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1",
                               aws_access_key_id=keys["setup"]["AccessKeyId"],
                               aws_secret_access_key=keys["setup"]["SecretAccessKey"])
        self.s3.create_bucket(Bucket=self.BUCKET)
        self.s3.put_object(Bucket=self.BUCKET, Key="unrelated/readme.txt", Body=b"not a log\n")

    @staticmethod
    def moto_answers(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop_moto(self):
        self.moto.kill()
        self.moto.wait()

    def put_log(self, name: str, lines: list):
        self.s3.put_object(Bucket=self.BUCKET, Key=self.PREFIX + "2026/12/06/" + name,
                           Body=gzip.compress(("\n".join(lines) + "\n").encode()))

    def serve(self, data_dir=None, env=None):
        return self.start_serve(data_dir=data_dir, env=env or self.reader_env, extra_args=[
            "--lb-logs", f"s3://{self.BUCKET}/{self.SOURCE_PREFIX}", "--lb-logs-s3-endpoint", self.s3_endpoint,
            "--lb-logs-poll", "1", "--lb-name", "edge-alb"])

    def test_bucket_objects_read_once(self):
        now = time.time()
        tids = [sh.trace_id() for _ in range(3)]
        self.put_log("a_app.edge_20261206T1200Z_10.0.0.1_x.log.gz",
                     [alb_line(tids[0], now - 2, now - 1.9, "10.0.0.5:5000", 200, 200),
                      "this line is not an access-log entry",
                      alb_line(tids[1], now - 2, now - 1.8, "10.0.0.5:5000", 503, "-")])
        self.xrayd = self.serve()
        for tid in tids[:2]:
            wait_for(f"LB segment of {tid}", lambda tid=tid: lb_segment(documents(self.xrayd, tid)), xrayd=self.xrayd)
        lb = lb_segment(documents(self.xrayd, tids[1]))
        self.assertEqual(lb["name"], "edge-alb")
        self.assertTrue(lb["fault"])
        # An object delivered later is picked up at the next listing.
        self.put_log("b_app.edge_20261206T1205Z_10.0.0.1_y.log.gz", [alb_line(tids[2], now - 1, now - 0.9, "10.0.0.5:5000", 404, 404)])
        wait_for("the later object", lambda: lb_segment(documents(self.xrayd, tids[2])), xrayd=self.xrayd)
        self.assertTrue(lb_segment(documents(self.xrayd, tids[2]))["error"])
        self.assertEqual(objects_read_at_stop(self.xrayd), 2)
        with open(self.xrayd.log_path, encoding="utf-8", errors="replace") as f:
            log = f.read()
        self.assertIn("1 malformed", log)
        self.assertNotIn("unrelated/readme.txt", log, "only the prefix is listed")
        # A restart on the same store: both objects remembered.
        again = self.serve(data_dir=self.xrayd.data_dir)
        time.sleep(2.5)
        self.assertEqual(objects_read_at_stop(again), 0)

    def test_refused_signature_is_retried_not_skipped(self):
        now = time.time()
        tid = sh.trace_id()
        self.put_log("c_app.edge_20261206T1210Z_10.0.0.1_z.log.gz", [alb_line(tid, now - 2, now - 1.9, "10.0.0.5:5000", 200, 200)])
        wrong = dict(self.reader_env, AWS_SECRET_ACCESS_KEY="not-the-secret")
        self.xrayd = self.serve(env=wrong)
        time.sleep(2.5)
        self.assertEqual(objects_read_at_stop(self.xrayd), 0)
        with open(self.xrayd.log_path, encoding="utf-8", errors="replace") as f:
            self.assertIn("SignatureDoesNotMatch", f.read())
        # The same store with the right key: the object was not marked read, so it is read now.
        again = self.serve(data_dir=self.xrayd.data_dir)
        wait_for("the LB segment", lambda: lb_segment(documents(again, tid)), xrayd=again)


if __name__ == "__main__":
    harness.main()
