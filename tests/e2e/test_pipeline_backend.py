#!/usr/bin/env python3
"""Checks the checker: fault_backend.FaultBackend's modes, seen from a raw HTTP client that signs its
PutTraceSegments requests with botocore (no xrayd involved).

    python3 tests/e2e/test_pipeline_backend.py
"""

import http.client
import json
import socket
import time
import unittest
import urllib.request

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import fake_xray
import harness
import fault_backend as fb


def signed_put(backend, docs, timeout=5.0):
    """One signed PutTraceSegments call; returns (status, headers, body) or raises the socket error."""
    body = json.dumps({"TraceSegmentDocuments": [json.dumps(d) for d in docs]}).encode()
    url = f"{backend.endpoint}/TraceSegments"
    req = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(fake_xray.TEST_ACCESS_KEY_ID, fake_xray.TEST_SECRET_ACCESS_KEY, fake_xray.TEST_SESSION_TOKEN),
              "xray", fake_xray.TEST_REGION).add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=timeout)
    try:
        conn.request("POST", "/TraceSegments", body=body, headers=dict(req.headers.items()))
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def doc(i):
    return {"trace_id": "1-5f000000-%024x" % i, "id": "%016x" % i, "name": "b", "start_time": 1.0, "end_time": 2.0}


class FaultBackendTest(unittest.TestCase):

    def setUp(self):
        self.b = fb.FaultBackend().start()

    def tearDown(self):
        self.b.stop()

    def test_ok_and_duplicates(self):
        self.assertEqual(signed_put(self.b, [doc(1), doc(2)])[0], 200)
        self.assertEqual(signed_put(self.b, [doc(2), doc(3)])[0], 200)
        self.assertEqual(self.b.distinct_ids(), {"%016x" % i for i in (1, 2, 3)})
        self.assertEqual(self.b.duplicates(), 1)
        self.assertEqual(self.b.duplicate_ids(), {"%016x" % 2: 2})
        self.assertEqual(self.b.signature_failures, [])

    def test_5xx_and_429(self):
        self.b.set_mode("5xx", status=503)
        status, _, body = signed_put(self.b, [doc(1)])
        self.assertEqual(status, 503)
        self.assertIn(b"ServiceUnavailableException", body)
        self.b.set_mode("429", retry_after=7)
        status, headers, _ = signed_put(self.b, [doc(1)])
        self.assertEqual(status, 429)
        self.assertEqual(headers.get("Retry-After"), "7")
        self.assertEqual(self.b.distinct_ids(), set())

    def test_stall_mid_response(self):
        self.b.set_mode("stall", seconds=10, processed=True)
        body = json.dumps({"TraceSegmentDocuments": [json.dumps(doc(5))]}).encode()
        req = AWSRequest(method="POST", url=f"{self.b.endpoint}/TraceSegments", data=body,
                         headers={"Content-Type": "application/json"})
        SigV4Auth(Credentials(fake_xray.TEST_ACCESS_KEY_ID, fake_xray.TEST_SECRET_ACCESS_KEY,
                              fake_xray.TEST_SESSION_TOKEN), "xray", fake_xray.TEST_REGION).add_auth(req)
        conn = http.client.HTTPConnection("127.0.0.1", self.b.port, timeout=1.0)
        t0 = time.monotonic()
        try:
            conn.request("POST", "/TraceSegments", body=body, headers=dict(req.headers.items()))
            r = conn.getresponse()  # the status line and headers arrive...
            self.assertEqual(r.status, 200)
            self.assertGreater(int(r.getheader("Content-Length")), 0)
            with self.assertRaises((socket.timeout, TimeoutError)):
                r.read()  # ...the body never does
        finally:
            conn.close()
        self.assertLess(time.monotonic() - t0, 3)
        self.assertEqual(self.b.distinct_ids(), {"%016x" % 5}, "processed before the stall")
        self.assertEqual(self.b.stalled_ids, ["%016x" % 5])
        self.b.set_mode("ok")  # releases the stalled handler

    def test_reset(self):
        self.b.set_mode("reset")
        with self.assertRaises((ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
            signed_put(self.b, [doc(1)])
        self.assertEqual(self.b.distinct_ids(), set())
        self.assertEqual(self.b.trace_requests()[0].outcome, "reset")

    def test_slow(self):
        self.b.set_mode("slow", delay=0.5, trickle=0.3)
        t0 = time.monotonic()
        status, _, body = signed_put(self.b, [doc(1)])
        took = time.monotonic() - t0
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {"UnprocessedTraceSegments": []})
        self.assertGreaterEqual(took, 0.75)

    def test_http_control(self):
        req = urllib.request.Request(f"{self.b.endpoint}/_fault/mode", data=b'{"mode": "429", "retry_after": 1}',
                                     method="POST")
        with urllib.request.urlopen(req, timeout=2) as r:
            self.assertEqual(json.load(r), {"mode": "429"})
        self.assertEqual(signed_put(self.b, [doc(1)])[0], 429)
        with urllib.request.urlopen(f"{self.b.endpoint}/_fault/stats", timeout=2) as r:
            stats = json.load(r)
        self.assertEqual((stats["mode"], stats["requests"], stats["accepted"]), ("429", 1, 0))
        bad = urllib.request.Request(f"{self.b.endpoint}/_fault/mode", data=b'{"mode": "nope"}', method="POST")
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(bad, timeout=2)
        self.assertEqual(e.exception.code, 400)

    def test_accounting_helpers(self):
        m = {'xrayd_exporter_received_total{exporter="xray"}': 10.0,
             'xrayd_exporter_delivered_total{exporter="xray"}': 6.0,
             'xrayd_exporter_queued_segments{exporter="xray"}': 1.0,
             'xrayd_exporter_spooled_segments{exporter="xray"}': 1.0,
             'xrayd_exporter_dropped_total{exporter="xray",reason="queue_full"}': 2.0,
             'xrayd_exporter_dropped_total{reason="expired",exporter="store"}': 5.0,
             'xrayd_exporter_received_total{exporter="store"}': 4.0}
        a = fb.account(m, "xray")
        self.assertTrue(a.balanced(), a.brief())
        self.assertEqual(a.dropped, {"queue_full": 2})
        s = fb.account(m, "store")
        self.assertFalse(s.balanced())
        self.assertEqual(s.dropped, {"expired": 5})
        self.assertFalse(fb.account(m, "otlp").present)


if __name__ == "__main__":
    harness.main()  # strips --xrayd (unused here: no xrayd involved)
