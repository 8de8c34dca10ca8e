#!/usr/bin/env python3
"""Checks the checker: FakeXRay's SigV4 verification accepts what botocore signs and refuses
anything else, its faults do what they say, and it keeps connections alive. The xrayd tests trust
"every Authorization header verified" only because this passes. (Needs no xrayd; --xrayd is
accepted and ignored so ctest can run every e2e file the same way.)"""

import http.client
import json
import socket
import sys
import time
import unittest

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import fake_xray
from fake_xray import Fault, FakeXRay


def signed_request(fake, docs, *, secret=fake_xray.TEST_SECRET_ACCESS_KEY, token=fake_xray.TEST_SESSION_TOKEN,
                   region=fake_xray.TEST_REGION, service="xray", path="/TraceSegments"):
    body = json.dumps({"TraceSegmentDocuments": docs}).encode()
    req = AWSRequest(method="POST", url=f"http://127.0.0.1:{fake.port}{path}", data=body,
                     headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(fake_xray.TEST_ACCESS_KEY_ID, secret, token), service, region).add_auth(req)
    return body, dict(req.headers.items())


def doc(i):
    return json.dumps({"trace_id": "1-5f000000-%024x" % i, "id": "%016x" % i, "name": "n",
                       "start_time": 1.0, "end_time": 2.0})


class FakeXRayTest(unittest.TestCase):
    def setUp(self):
        self.fake = FakeXRay().start()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.fake.port, timeout=5)

    def tearDown(self):
        self.conn.close()
        self.fake.stop()

    def post(self, body, headers, path="/TraceSegments"):
        self.conn.request("POST", path, body=body, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read()

    def test_botocore_signature_verifies_and_keepalive(self):
        for i in range(3):
            body, headers = signed_request(self.fake, [doc(i), doc(i + 100)])
            status, answer = self.post(body, headers)
            self.assertEqual(status, 200, answer)
            self.assertEqual(json.loads(answer), {"UnprocessedTraceSegments": []})
        self.assertEqual(self.fake.signature_failures, [])
        self.assertEqual(self.fake.protocol_violations, [])
        self.assertEqual(len(self.fake.accepted_documents()), 6)
        self.assertEqual(self.fake.connections, 1, "keep-alive: three requests on one connection")

    def test_bad_signatures_are_caught(self):
        cases = {
            "wrong secret": signed_request(self.fake, [doc(1)], secret="not-the-secret"),
            "wrong region": signed_request(self.fake, [doc(1)], region="eu-west-1"),
            "wrong service": signed_request(self.fake, [doc(1)], service="xrayy"),
            "no session token": signed_request(self.fake, [doc(1)], token=None),
        }
        body, headers = signed_request(self.fake, [doc(1)])
        cases["tampered body"] = (body.replace(b"end_time", b"end_tim3"), headers)
        h2 = dict(headers)
        h2["Content-Type"] = "application/x-amz-json-1.1"  # a signed header changed in transit
        cases["tampered header"] = (body, h2)
        h3 = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        cases["unsigned"] = (body, h3)
        for name, (b, h) in cases.items():
            with self.subTest(name):
                before = len(self.fake.signature_failures)
                status, answer = self.post(b, h)
                self.assertEqual(status, 403, answer)
                self.assertEqual(len(self.fake.signature_failures), before + 1)
        self.assertEqual(self.fake.accepted_documents(), [])

    def test_faults(self):
        self.fake.push_faults(Fault.server_error(), Fault.throttle(), Fault.invalid_request(),
                              Fault.unprocessed_segments(1))
        expected = [(500, "InternalFailure"), (429, "ThrottledException"), (400, "InvalidRequestException")]
        for status, code in expected:
            body, headers = signed_request(self.fake, [doc(1), doc(2)])
            got, answer = self.post(body, headers)
            self.assertEqual(got, status)
            self.assertEqual(json.loads(answer)["__type"], code)
        body, headers = signed_request(self.fake, [doc(1), doc(2)])
        got, answer = self.post(body, headers)
        self.assertEqual(got, 200)
        self.assertEqual([u["Id"] for u in json.loads(answer)["UnprocessedTraceSegments"]], ["%016x" % 1])
        self.assertEqual(self.fake.accepted_ids(), ["%016x" % 2])

        # close without answering
        self.fake.push_faults(Fault.close())
        body, headers = signed_request(self.fake, [doc(3)])
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.post(body, headers)
        self.conn.close()

        # stall, cut short by release_stalls(), then answer normally
        self.fake.push_faults(Fault.stall(30))
        body, headers = signed_request(self.fake, [doc(4)])
        t0 = time.monotonic()
        import threading
        threading.Timer(0.5, self.fake.release_stalls).start()
        got, _ = self.post(body, headers)
        self.assertEqual(got, 200)
        self.assertLess(time.monotonic() - t0, 5)

        # a stall the client gives up on
        self.fake.push_faults(Fault.stall(1.0, then=Fault.close()))
        body, headers = signed_request(self.fake, [doc(5)])
        c = http.client.HTTPConnection("127.0.0.1", self.fake.port, timeout=0.3)
        c.request("POST", "/TraceSegments", body=body, headers=headers)
        with self.assertRaises(socket.timeout):
            c.getresponse()
        c.close()
        self.assertEqual(self.fake.signature_failures, [])

    def test_other_paths_404(self):
        for method, path in [("GET", "/TraceSegments"), ("POST", "/GetSamplingRules"), ("GET", "/")]:
            self.conn.request(method, path, body=b"{}" if method == "POST" else None)
            r = self.conn.getresponse()
            self.assertEqual(r.status, 404)
            self.assertIn("__type", json.loads(r.read()))
        self.assertEqual(len(self.fake.other_requests), 3)
        self.assertEqual(self.fake.trace_requests(), [])

    def test_protocol_violations_recorded(self):
        body, headers = signed_request(self.fake, [doc(i) for i in range(51)])
        status, _ = self.post(body, headers)
        self.assertEqual(status, 400)
        body, headers = signed_request(self.fake, ["not json"])
        status, _ = self.post(body, headers)
        self.assertEqual(status, 400)
        self.assertEqual(len(self.fake.protocol_violations), 2, self.fake.protocol_violations)


if __name__ == "__main__":
    args = [a for i, a in enumerate(sys.argv) if a != "--xrayd" and (i == 0 or sys.argv[i - 1] != "--xrayd")]
    args = [a for a in args if not a.startswith("--xrayd=")]
    unittest.main(argv=args, verbosity=2)
