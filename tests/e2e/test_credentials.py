#!/usr/bin/env python3
"""xrayd with temporary credentials from STS, as on EKS: the real daemon, a fake STS, a fake X-Ray.

FakeSTS below speaks STS's Query API (POST /, form-encoded Action=...&Version=2011-06-15, XML
answers) and issues one fixed set of temporary credentials. xrayd reaches it through
AWS_ENDPOINT_URL_STS. The fake X-Ray (fake_xray.FakeXRay) is told to accept only those STS-issued
credentials, and verifies every PutTraceSegments signature with botocore, so a segment arriving
proves it was signed with the key STS handed out.

  * web identity (IRSA): AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE [+ AWS_ROLE_SESSION_NAME] →
    AssumeRoleWithWebIdentity (unsigned, carrying the token file's contents) → segments and
    PutTelemetryRecords signed with the issued key;
  * --role-arn: the environment's static keys sign AssumeRole (checked with botocore here), and the
    assumed role's key signs the uploads;
  * a refused AssumeRoleWithWebIdentity (XML ErrorResponse) at startup: xrayd keeps running, logs
    the STS error once, and fetches again after the backoff.

    python3 tests/e2e/test_credentials.py --xrayd build/xrayd
"""

import http.server
import json
import os
import shutil
import socketserver
import tempfile
import threading
import time
import urllib.parse

import fake_xray
import harness
from harness import UdpSender, XraydTestCase, datagram, make_segment

ROLE_ARN = "arn:aws:iam::123456789012:role/xrayd-e2e-irsa"
ASSUMED_ROLE_ARN = "arn:aws:iam::210987654321:role/xrayd-e2e-cross-account"
WEB_IDENTITY_TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImUyZSJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6eHJheTp4cmF5ZCJ9.c2ln"
STS_ACCESS_KEY_ID = "ASIAE2ESTSISSUED0001"
STS_SECRET_ACCESS_KEY = "sts/issued+secret&<key>0123456789abcdef"
STS_SESSION_TOKEN = "IQoJb3JpZ2luX2VjE//sts-issued+token/with=odd&chars<>=="


def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


class FakeSTS:
    """STS AssumeRole / AssumeRoleWithWebIdentity on 127.0.0.1. Records every call; AssumeRole
    signatures are verified with botocore against `caller` (access key, secret, session token)."""

    def __init__(self, *, caller=None, region=fake_xray.TEST_REGION, lifetime_s=3600):
        self.caller, self.region, self.lifetime_s = caller, region, lifetime_s
        self.calls = []  # dicts: action, form, headers, signature_ok, signature_error
        self.fail_next = []  # (status, code, message) consumed in order
        self._lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = fake._answer(self.command, self.path, list(self.headers.items()), body)
                data = answer.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def calls_of(self, action):
        with self._lock:
            return [c for c in self.calls if c["action"] == action]

    def _answer(self, method, path, headers, body):
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}
        action = form.get("Action", "")
        call = {"action": action, "form": form, "headers": dict((k.lower(), v) for k, v in headers),
                "signature_ok": None, "signature_error": ""}
        if action == "AssumeRole" and self.caller:
            ok, why = fake_xray.verify_sigv4(method, path, headers, body, access_key=self.caller[0],
                                             secret_key=self.caller[1], session_token=self.caller[2],
                                             region=self.region, service="sts")
            call["signature_ok"], call["signature_error"] = ok, why
        with self._lock:
            self.calls.append(call)
            failure = self.fail_next.pop(0) if self.fail_next else None
        if failure:
            status, code, message = failure
            return status, ("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
                            f"  <Error>\n    <Type>Sender</Type>\n    <Code>{code}</Code>\n"
                            f"    <Message>{_xml_escape(message)}</Message>\n  </Error>\n"
                            "  <RequestId>fake-sts-error</RequestId>\n</ErrorResponse>\n")
        if form.get("Version") != "2011-06-15" or action not in ("AssumeRole", "AssumeRoleWithWebIdentity"):
            return 400, "<ErrorResponse><Error><Code>InvalidAction</Code><Message>unknown</Message></Error></ErrorResponse>"
        if action == "AssumeRole" and call["signature_ok"] is False:
            return 403, ("<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code>"
                         f"<Message>{_xml_escape(call['signature_error'].splitlines()[0])}</Message></Error></ErrorResponse>")
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + self.lifetime_s))
        session = _xml_escape(form.get("RoleSessionName", ""))
        return 200, (f"<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
                     f"  <{action}Result>\n"
                     "    <AssumedRoleUser>\n"
                     f"      <Arn>arn:aws:sts::123456789012:assumed-role/xrayd-e2e/{session}</Arn>\n"
                     f"      <AssumedRoleId>AROAE2EFAKEROLEID:{session}</AssumedRoleId>\n"
                     "    </AssumedRoleUser>\n"
                     "    <Credentials>\n"
                     f"      <SessionToken>{_xml_escape(STS_SESSION_TOKEN)}</SessionToken>\n"
                     f"      <SecretAccessKey>{_xml_escape(STS_SECRET_ACCESS_KEY)}</SecretAccessKey>\n"
                     f"      <Expiration>{expiration}</Expiration>\n"
                     f"      <AccessKeyId>{STS_ACCESS_KEY_ID}</AccessKeyId>\n"
                     "    </Credentials>\n"
                     f"  </{action}Result>\n"
                     "  <ResponseMetadata>\n    <RequestId>fake-sts-1</RequestId>\n  </ResponseMetadata>\n"
                     f"</{action}Response>\n")


class CredentialsTest(XraydTestCase):
    def setUp(self):
        super().setUp()
        # The fake X-Ray accepts only what STS issues.
        self.fake.stop()
        self.fake = fake_xray.FakeXRay(access_key=STS_ACCESS_KEY_ID, secret_key=STS_SECRET_ACCESS_KEY,
                                       session_token=STS_SESSION_TOKEN).start()
        self.sts = None

    def tearDown(self):
        if self.sts is not None:
            self.sts.stop()
        super().tearDown()

    def web_identity_env(self):
        token_dir = self.make_dir()
        token_file = os.path.join(token_dir, "token")
        with open(token_file, "w") as f:
            f.write(WEB_IDENTITY_TOKEN)
        return {
            # No static keys: the harness's test keys must not win over web identity.
            "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
            "AWS_ROLE_ARN": ROLE_ARN,
            "AWS_WEB_IDENTITY_TOKEN_FILE": token_file,
            "AWS_ROLE_SESSION_NAME": "xrayd-e2e-pod",
            "AWS_ENDPOINT_URL_STS": self.sts.url,
        }

    def make_dir(self):
        d = tempfile.mkdtemp(prefix="xrayd-e2e-creds-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def send(self, daemon, n, name):
        docs = [make_segment(name=f"{name}-{i}") for i in range(n)]
        sender = UdpSender(daemon.udp_port)
        try:
            sender.send_all([datagram(d) for d in docs])
        finally:
            sender.close()
        return [d["id"] for d in docs]

    def assert_delivered(self, daemon, ids, timeout=20):
        missing = self.fake.wait_for_ids(ids, timeout)
        self.assertFalse(missing, f"{len(missing)} of {len(ids)} segments never accepted; {self.fake.summary()}\n"
                                  f"{daemon.log_tail()}")
        self.assert_all_signed()
        self.assert_protocol_clean()

    def test_web_identity_signs_segments_and_telemetry_with_sts_credentials(self):
        self.sts = FakeSTS()
        daemon = self.start_xrayd(env=self.web_identity_env(), config={"TelemetryIntervalSeconds": 1})
        ids = self.send(daemon, 60, "e2e-irsa")
        self.assert_delivered(daemon, ids)
        for r in self.fake.trace_requests():
            self.assertEqual(r.header("X-Amz-Security-Token"), STS_SESSION_TOKEN)

        calls = self.sts.calls_of("AssumeRoleWithWebIdentity")
        self.assertEqual(len(calls), 1, "one STS call: the credentials are cached for their hour")
        form = calls[0]["form"]
        self.assertEqual(form["RoleArn"], ROLE_ARN)
        self.assertEqual(form["WebIdentityToken"], WEB_IDENTITY_TOKEN)
        self.assertEqual(form["RoleSessionName"], "xrayd-e2e-pod")
        self.assertEqual(form["Version"], "2011-06-15")
        self.assertNotIn("authorization", calls[0]["headers"], "AssumeRoleWithWebIdentity must be unsigned")
        self.assertEqual(self.sts.calls_of("AssumeRole"), [])

        # PutTelemetryRecords, also signed with the STS-issued key, counts what was received.
        self.assertTrue(self.fake.wait_for(lambda f: sum(
            r["SegmentsReceivedCount"] for t in f.telemetry_requests for r in json.loads(t.body)["TelemetryRecords"])
            >= len(ids), 10), f"telemetry never reported {len(ids)} received segments")
        for t in self.fake.telemetry_requests:
            ok, why = fake_xray.verify_sigv4(t.method, t.path, t.headers, t.body, access_key=STS_ACCESS_KEY_ID,
                                             secret_key=STS_SECRET_ACCESS_KEY, session_token=STS_SESSION_TOKEN,
                                             region=fake_xray.TEST_REGION)
            self.assertTrue(ok, f"telemetry signature: {why}")
            body = json.loads(t.body)
            self.assertEqual(set(body), {"EC2InstanceId", "Hostname", "ResourceARN", "TelemetryRecords"})
            for rec in body["TelemetryRecords"]:
                self.assertEqual(set(rec["BackendConnectionErrors"]),
                                 {"TimeoutCount", "ConnectionRefusedCount", "HTTPCode4XXCount", "HTTPCode5XXCount",
                                  "UnknownHostCount", "OtherCount"})
        self.assertIn("web identity token", daemon.log_text())
        self.assertEqual(daemon.terminate(), 0, daemon.log_tail())

    def test_role_arn_assumes_role_with_the_chains_credentials(self):
        caller = (fake_xray.TEST_ACCESS_KEY_ID, fake_xray.TEST_SECRET_ACCESS_KEY, fake_xray.TEST_SESSION_TOKEN)
        self.sts = FakeSTS(caller=caller)
        daemon = self.start_xrayd(env={"AWS_ENDPOINT_URL_STS": self.sts.url},
                                  extra_args=["--role-arn", ASSUMED_ROLE_ARN])
        ids = self.send(daemon, 10, "e2e-role-arn")
        self.assert_delivered(daemon, ids)
        calls = self.sts.calls_of("AssumeRole")
        self.assertEqual(len(calls), 1)
        self.assertTrue(calls[0]["signature_ok"], f"AssumeRole signature (botocore): {calls[0]['signature_error']}")
        self.assertEqual(calls[0]["form"]["RoleArn"], ASSUMED_ROLE_ARN)
        self.assertTrue(calls[0]["form"]["RoleSessionName"].startswith("xrayd-"))
        self.assertEqual(daemon.terminate(), 0, daemon.log_tail())

    def test_sts_error_is_logged_once_and_retried_after_backoff(self):
        self.sts = FakeSTS()
        self.sts.fail_next = [(400, "InvalidIdentityToken", "No OpenIDConnect provider found in your account")]
        daemon = self.start_xrayd(env=self.web_identity_env())
        # The startup fetch was refused; the next one may come after a backoff of at most 1 s.
        self.assertTrue(self.sts.calls_of("AssumeRoleWithWebIdentity"), "no STS call at startup")
        time.sleep(1.2)
        ids = self.send(daemon, 5, "e2e-sts-recovered")
        self.assert_delivered(daemon, ids)
        calls = self.sts.calls_of("AssumeRoleWithWebIdentity")
        self.assertEqual(len(calls), 2, "one refused call, one retry after the backoff")
        log = daemon.log_text()
        self.assertEqual(log.count("InvalidIdentityToken"), 1, "one log line per incident:\n" + daemon.log_tail())
        self.assertIn("No OpenIDConnect provider found in your account", log)
        self.assertIn("refreshed after 1 failed attempt", log)
        self.assertEqual(daemon.terminate(), 0, daemon.log_tail())


if __name__ == "__main__":
    harness.main()
