#!/usr/bin/env python3
"""Segments whose times cannot be right never reach `xrayd serve`'s store (segment/segment.h's
rules): start_time in milliseconds or past year 9999, end_time before start_time. Sent over UDP
they are counted as rejected{reason="invalid_time"}; sent with PutTraceSegments (boto3) they come
back in UnprocessedTraceSegments. Afterwards boto3 lists and reads the window that covers them
without error (a stored year-58900 start_time made every such listing fail in Python's datetime).

    python3 tests/e2e/test_serve_bad_times.py --xrayd build/xrayd [-v]
"""

import socket
import time
import unittest
import urllib.request

import harness
import serve_harness as sh

try:
    import boto3
    import botocore.config
except ImportError:  # reported by the test, which then fails
    boto3 = None


def xray_client(endpoint: str):
    return boto3.client("xray", endpoint_url=endpoint, region_name=sh.REGION,
                        aws_access_key_id=sh.DUMMY_ACCESS_KEY_ID, aws_secret_access_key=sh.DUMMY_SECRET_ACCESS_KEY,
                        config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))


class BadTimesTest(sh.ServeTestCase):
    def start_serve(self, **kw):
        self.health_port, = harness.free_ports(socket.SOCK_STREAM)
        return super().start_serve(extra_args=["--health-address", f"127.0.0.1:{self.health_port}"], **kw)

    def metrics(self) -> harness.Metrics:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/metrics", timeout=2) as r:
            return harness.Metrics(harness.parse_metrics(r.read().decode()))

    def wait_ready(self, timeout: float = 10.0):
        """The API answers before the UDP receiver is bound; /readyz (started last) says all are up."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.fail(f"/readyz not 200 within {timeout} s:\n{self.xrayd.log_tail()}")
            time.sleep(0.05)

    def test_impossible_times_are_rejected_everywhere_and_listings_keep_working(self):
        self.assertIsNotNone(boto3, "boto3 is needed")
        self.wait_ready()
        t = sh.now() - 5
        good_udp = sh.segment(sh.trace_id(), "good-udp", start=t)
        bad_udp = [
            sh.segment(sh.trace_id(), "millis", start=t * 1000),            # year ~57000
            sh.segment(sh.trace_id(), "backwards", start=t, duration=-1.0),  # end before start
            sh.segment(sh.trace_id(), "year-10000", start=253402300800.0),
        ]
        sh.send_udp(self.xrayd.udp_port, [good_udp] + bad_udp)

        xray = xray_client(self.xrayd.endpoint)
        good_api = sh.segment(sh.trace_id(), "good-api", start=t)
        bad_api = sh.segment(sh.trace_id(), "millis-api", start=t * 1000)
        out = xray.put_trace_segments(TraceSegmentDocuments=[sh.dumps(good_api), sh.dumps(bad_api)])
        unprocessed = out.get("UnprocessedTraceSegments", [])
        self.assertEqual([u["Id"] for u in unprocessed], [bad_api["id"]], out)
        self.assertIn("start_time", unprocessed[0].get("Message", ""), out)

        self.xrayd.wait_for_segments({good_udp["trace_id"]: [good_udp["id"]],
                                      good_api["trace_id"]: [good_api["id"]]})
        m = self.metrics()
        self.assertEqual(m.rejected_by("invalid_time"), len(bad_udp), m.brief())
        self.assertEqual(m.rejected_by("invalid_segment"), 0, m.brief())

        # Listing a window that covers everything sent, by event time and by trace-id time: boto3
        # parses every StartTime it gets, so one impossible time stored would fail the call.
        seen = set()
        for range_type in ("Event", "TraceId"):
            pages = xray.get_paginator("get_trace_summaries").paginate(
                StartTime=t - 60, EndTime=time.time() + 60, TimeRangeType=range_type)
            for page in pages:
                for s in page["TraceSummaries"]:
                    seen.add(s["Id"])
        self.assertEqual(seen, {good_udp["trace_id"], good_api["trace_id"]})
        bad_ids = [d["trace_id"] for d in bad_udp] + [bad_api["trace_id"]]
        got = xray.batch_get_traces(TraceIds=bad_ids)
        self.assertEqual(got.get("Traces", []), [], "a document with an impossible time was stored")
        self.assert_alive()


if __name__ == "__main__":
    harness.main()
