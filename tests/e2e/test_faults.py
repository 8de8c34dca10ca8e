#!/usr/bin/env python3
"""xrayd against a misbehaving X-Ray API, and against bad input.

Each test starts its own fake X-Ray (fake_xray.FakeXRay, SigV4-verifying) and its own xrayd on free
loopback ports, sends raw segment documents over UDP, and checks what reached the fake and what
xrayd's /metrics say:

  (i)    HTTP 500 for the first requests        → retried, every segment delivered, no failures
  (ii)   HTTP 429 ThrottledException             → same; Retry-After is honoured
  (iii)  stalls longer than --request-timeout 1  → same
  (iv)   connection closed without an answer     → same
  (v)    HTTP 400 InvalidRequestException        → not retried: one request per batch,
                                                   failed{reason="permanent_error"}
  (vi)   bad datagrams                           → rejected{reason=...} by reason, valid ones unharmed;
                                                   odd but valid datagrams forwarded verbatim
  (vii)  SIGTERM (and SIGINT) with buffered      → delivered, exit 0; with X-Ray unreachable, exit 0
         segments                                  after ShutdownGraceSeconds
  (viii) -m 3 and a stalled API under a flood    → xrayd_buffer_bytes never over 3 MiB; after
                                                   recovery received = sent+spilled+rejected+failed
  plus UnprocessedTraceSegments, MaxAttempts, the 1 s partial-batch flush, /healthz /readyz
  /metrics, and keep-alive connection reuse.

    python3 tests/e2e/test_faults.py --xrayd build/xrayd [-k name]
"""

import json
import os
import random
import re
import signal
import threading
import time
import unittest

import harness
from fake_xray import Fault
from harness import UdpSender, XraydTestCase, datagram, make_segment

MiB = 1024 * 1024


class FaultsTest(XraydTestCase):
    rng = random.Random()

    # ---- helpers ----
    def send_segments(self, daemon, n, *, size=0, name="e2e-fault", pace_every=100, pause=0.002):
        docs = [make_segment(name=f"{name}-{i}", pad_to=size, rng=self.rng) for i in range(n)]
        sender = UdpSender(daemon.udp_port)
        try:
            sender.send_all([datagram(d) for d in docs], pace_every=pace_every, pause=pause)
        finally:
            sender.close()
        return [d["id"] for d in docs]

    def assert_all_delivered(self, daemon, ids, timeout=30):
        missing = self.fake.wait_for_ids(ids, timeout)
        m = daemon.wait_drained(10)
        self.assertFalse(missing, f"{len(missing)} of {len(ids)} segments never accepted by X-Ray; "
                                  f"{self.fake.summary()}; metrics: {m.brief()}")
        accepted = set(self.fake.accepted_ids())
        self.assertEqual(accepted, set(ids), "X-Ray accepted segments nobody sent")
        self.assertEqual(m.received, len(ids), m.brief())
        self.assertEqual(m.sent, len(ids), m.brief())
        self.assertEqual(m.failed, 0, m.brief())
        self.assertTrue(m.balanced(), m.brief())
        self.assert_all_signed()
        self.assert_protocol_clean()
        self.assertTrue(daemon.alive(), "xrayd died")
        return m

    # ---- (i)-(iv): retryable failures ----
    def test_i_server_errors_are_retried(self):
        self.fake.push_faults(*[Fault.server_error() for _ in range(5)])
        daemon = self.start_xrayd()
        ids = self.send_segments(daemon, 200)
        m = self.assert_all_delivered(daemon, ids)
        self.assertEqual(m.retries, 5, f"one retry per 500; {m.brief()}")
        self.assertEqual(m['xrayd_export_requests_total{result="retryable"}'], 5, m.brief())
        self.assertEqual(sum(1 for r in self.fake.trace_requests() if r.outcome == "status 500"), 5)

    def test_ii_throttling_is_retried(self):
        self.fake.push_faults(*[Fault.throttle() for _ in range(5)])
        daemon = self.start_xrayd()
        ids = self.send_segments(daemon, 200)
        m = self.assert_all_delivered(daemon, ids)
        self.assertEqual(m.retries, 5, m.brief())
        self.assertEqual(m['xrayd_export_requests_total{result="throttled"}'], 5, m.brief())

    def test_ii_throttle_retry_after_is_honoured(self):
        self.fake.push_faults(Fault.throttle(retry_after=1))
        daemon = self.start_xrayd()
        ids = self.send_segments(daemon, 50)  # exactly one full batch
        self.assert_all_delivered(daemon, ids)
        reqs = self.fake.trace_requests()
        self.assertEqual([r.outcome for r in reqs], ["status 429", "ok"])
        self.assertEqual(reqs[0].documents, reqs[1].documents, "the retry carries the same batch")
        gap = reqs[1].received_at - reqs[0].received_at
        self.assertGreaterEqual(gap, 0.9, f"retried {gap:.2f} s after 429 with Retry-After: 1")

    def test_iii_stalls_beyond_request_timeout_are_retried(self):
        # Four full batches; each first attempt stalls 5 s (then the connection is closed) while
        # xrayd gives up after 1 s and retries.
        self.fake.push_faults(*[Fault.stall(5, then=Fault.close()) for _ in range(4)])
        daemon = self.start_xrayd(request_timeout=1)
        t0 = time.monotonic()
        ids = self.send_segments(daemon, 200)
        m = self.assert_all_delivered(daemon, ids, timeout=20)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(m.retries, 4, m.brief())
        self.assertLess(elapsed, 4.5, f"delivery took {elapsed:.1f} s: the 1 s request timeout was not applied")
        self.fake.release_stalls()

    def test_iv_closed_connections_are_retried(self):
        self.fake.push_faults(*[Fault.close() for _ in range(5)])
        daemon = self.start_xrayd()
        ids = self.send_segments(daemon, 200)
        m = self.assert_all_delivered(daemon, ids)
        self.assertGreater(m.retries, 0, m.brief())
        self.assertEqual(sum(1 for r in self.fake.trace_requests() if r.outcome == "close"), 5)

    # ---- (v): permanent errors ----
    def test_v_invalid_request_is_not_retried(self):
        self.fake.set_default_fault(Fault.invalid_request())
        daemon = self.start_xrayd()
        ids = self.send_segments(daemon, 120)  # 50 + 50 + a partial 20
        m = daemon.wait_metrics(lambda m: m.failed_by("permanent_error") >= 120, 10)
        time.sleep(1.5)  # room for any (wrong) retry to show up
        m = daemon.metrics()
        reqs = self.fake.trace_requests()
        sent_ids = [json.loads(d)["id"] for r in reqs for d in r.documents]
        self.assertEqual(sorted(sent_ids), sorted(ids), "each segment in exactly one request")
        self.assertEqual(len(reqs), 3, [len(r.documents) for r in reqs])
        self.assertEqual(m.failed_by("permanent_error"), 120, m.brief())
        self.assertEqual(m.retries, 0, m.brief())
        self.assertEqual(m.sent, 0, m.brief())
        self.assertEqual(m['xrayd_export_requests_total{result="permanent"}'], 3, m.brief())
        self.assertTrue(m.balanced(), m.brief())
        self.assert_all_signed()
        self.assertEqual(self.fake.accepted_documents(), [])

    def test_max_attempts_bounds_retries(self):
        self.fake.set_default_fault(Fault.server_error())
        daemon = self.start_xrayd(config={"MaxAttempts": 3})
        ids = self.send_segments(daemon, 50)
        m = daemon.wait_metrics(lambda m: m.failed_by("retries_exhausted") >= 50, 15)
        time.sleep(1.0)
        m = daemon.metrics()
        self.assertEqual(len(self.fake.trace_requests()), 3, self.fake.summary())
        self.assertEqual(m.failed_by("retries_exhausted"), 50, m.brief())
        self.assertEqual(m.retries, 2, m.brief())
        self.assertTrue(m.balanced(), m.brief())
        self.assertEqual(len(ids), 50)

    def test_unprocessed_segments_are_counted_not_retried(self):
        self.fake.push_faults(Fault.unprocessed_segments(lambda ids: ids[:3]))
        daemon = self.start_xrayd()
        ids = self.send_segments(daemon, 100)
        m = daemon.wait_metrics(lambda m: m.sent + m.failed >= 100, 10)
        time.sleep(0.5)
        m = daemon.wait_drained(5)
        refused = self.fake.trace_requests()[0].unprocessed_ids
        self.assertEqual(len(refused), 3)
        self.assertEqual(m.failed_by("unprocessed"), 3, m.brief())
        self.assertEqual(m.sent, 97, m.brief())
        self.assertEqual(m.retries, 0, m.brief())
        self.assertEqual(set(self.fake.accepted_ids()), set(ids) - set(refused))
        self.assertTrue(m.balanced(), m.brief())

    # ---- (vi): bad input ----
    def test_vi_bad_datagrams_rejected_by_reason(self):
        daemon = self.start_xrayd()
        seg = lambda tag, **kw: {**make_segment(name=f"bad-{tag}", rng=self.rng), **kw}
        body = lambda d: json.dumps(d).encode()
        H = harness.SEGMENT_HEADER
        bad = {
            "bad_header": [
                b'{"format": "xml", "version": 1}\n' + body(seg("h1")),
                b'{"format": "json", "version": 2}\n' + body(seg("h2")),
                b'{"format": "json"}\n' + body(seg("h3")),
                b"hello\n" + body(seg("h4")),
                body(seg("h5")),  # no header line at all
                b'["format", "json"]\n' + body(seg("h6")),
            ],
            "bad_json": [
                H + body(seg("j1"))[:-10],
                H + b"not json at all",
                H + b"",
                H + b'{"trace_id": "1-5f000000-000000000000000000000001", "id": "00000000000000aa",,}',
            ],
            "invalid_segment": [
                H + body({k: v for k, v in seg("s1").items() if k != "trace_id"}),
                H + body(seg("s2", trace_id="not-a-trace-id")),
                H + body({k: v for k, v in seg("s3").items() if k != "id"}),
                H + body(seg("s4", id="xyz")),
                H + body(seg("s5", type="subsegment")),  # no parent_id
                H + body({k: v for k, v in seg("s6").items() if k != "start_time"}),
                H + b"[1, 2, 3]",
                H + body(seg("s7", name="")),
                H + body(seg("s8", name="é" * 201)),  # X-Ray's limit is 200 characters
            ],
        }
        good_docs = [make_segment(name=f"good-{i}", rng=self.rng) for i in range(99)]
        good_docs.append(make_segment(name="é" * 200, rng=self.rng))  # at the limit: valid
        stream = [datagram(d) for d in good_docs]
        bad_all = [(reason, d) for reason, ds in bad.items() for d in ds]
        for i, (_, d) in enumerate(bad_all):  # interleave
            stream.insert((i * 7) % len(stream), d)
        sender = UdpSender(daemon.udp_port)
        try:
            sender.send_all(stream, pace_every=50, pause=0.002)
        finally:
            sender.close()

        ids = [d["id"] for d in good_docs]
        missing = self.fake.wait_for_ids(ids, 15)
        m = daemon.wait_metrics(lambda m: m.received >= len(stream) and m.balanced(), 5)
        self.assertFalse(missing, f"{len(missing)} valid segments lost among bad ones")
        for reason, ds in bad.items():
            self.assertEqual(m.rejected_by(reason), len(ds), f"rejected{{reason={reason}}}: {m.brief()}")
        self.assertEqual(m.rejected_by("too_large"), 0, m.brief())
        self.assertEqual(m.received, len(stream), m.brief())
        self.assertEqual(m.sent, 100, m.brief())
        self.assertEqual(set(self.fake.accepted_ids()), set(ids), "a bad datagram was forwarded")
        self.assertTrue(m.balanced(), m.brief())
        self.assert_all_signed()
        self.assert_protocol_clean()
        self.assertTrue(daemon.alive())

    def test_vi_valid_datagram_variants_forwarded_verbatim(self):
        """Odd but valid datagrams reach X-Ray as the very same document text."""
        daemon = self.start_xrayd()
        H = harness.SEGMENT_HEADER
        cases = {}

        def case(tag, header, text, want=None):
            cases[tag] = (header + text.encode(), want if want is not None else text)

        seg = lambda tag, **kw: make_segment(name=tag, rng=self.rng, **kw)
        case("crlf-header", b'{"format":"json","version":1}\r\n', json.dumps(seg("crlf-header")))
        case("reordered-header", b'{"version": 1, "format": "json", "extra": [1]}\n', json.dumps(seg("reordered")))
        case("pretty", H, json.dumps(seg("pretty", annotations={"k": "v\u2028"}), indent="\t").replace("\n", "\r\n"))
        case("leading-ws", H, "  \n" + json.dumps(seg("leading-ws")))
        text = json.dumps(seg("trailing-newline"))
        case("trailing-newline", H, text + "\n", want=text)  # trailing whitespace may be trimmed
        case("raw-utf8", H, json.dumps(seg("raw-utf8", annotations={"k": "é😀\u2028\u007f"}), ensure_ascii=False))
        case("escapes", H, json.dumps(seg("escapes", annotations={"k": "\u0000 \" \\ / \b\f"}))
             .replace('"escapes"', '"esc\\/apes\\u00e9"'))
        sender = UdpSender(daemon.udp_port)
        try:
            sender.send_all(dg for dg, _ in cases.values())
        finally:
            sender.close()
        self.fake.wait_for(lambda f: len(f.accepted_documents()) >= len(cases), 5)
        got = {json.loads(g)["id"]: g for g in self.fake.accepted_documents()}
        for tag, (_, want) in cases.items():
            with self.subTest(tag):
                doc_id = json.loads(want)["id"]
                self.assertIn(doc_id, got, f"{tag}: not delivered ({daemon.metrics().brief()})")
                self.assertIn(got[doc_id], (want, want.rstrip()), f"{tag}: altered")
        self.assertEqual(len(got), len(cases))
        self.assert_all_signed()
        self.assert_protocol_clean()

    # ---- (vii): shutdown ----
    def test_vii_sigterm_delivers_buffered_segments(self):
        daemon = self.start_xrayd()
        ids = self.send_segments(daemon, 130)  # two full batches and a partial one still waiting
        t_sent = time.monotonic()
        daemon.wait_metrics(lambda m: m.received >= 130, 5)
        t_term = time.monotonic()
        rc = daemon.terminate(timeout=15)
        t_exit = time.monotonic()
        self.assertEqual(rc, 0, daemon.log_tail())
        self.assertLess(t_exit - t_term, 5, "shutdown with a healthy API took too long")
        self.assertEqual(sorted(self.fake.accepted_ids()), sorted(ids), self.fake.summary())
        if t_term - t_sent < 0.8:  # the partial batch was not due yet: SIGTERM must have flushed it
            last = max(r.received_at for r in self.fake.trace_requests())
            self.assertGreaterEqual(last, t_term, "the partial batch went out before SIGTERM anyway")
        self.assert_all_signed()
        self.assert_protocol_clean()

    def test_vii_sigint_flushes_too(self):
        daemon = self.start_xrayd()
        ids = self.send_segments(daemon, 30)
        daemon.wait_metrics(lambda m: m.received >= 30, 5)
        daemon.proc.send_signal(signal.SIGINT)
        self.assertEqual(daemon.terminate(timeout=15), 0, daemon.log_tail())
        self.assertEqual(sorted(self.fake.accepted_ids()), sorted(ids), self.fake.summary())

    def test_vii_sigterm_delivers_datagrams_queued_on_the_socket(self):
        # The datagrams are in xrayd's socket receive queue (loopback sendto() has returned) when
        # SIGTERM arrives, but the receiver thread may not have read them yet. AWS's daemon 3.5.0
        # delivers all of them; xrayd should drain the socket before closing it.
        daemon = self.start_xrayd()
        ids = self.send_segments(daemon, 130, pace_every=0)
        rc = daemon.terminate(timeout=15)
        self.assertEqual(rc, 0, daemon.log_tail())
        got = set(self.fake.accepted_ids())
        self.assertEqual(len(got & set(ids)), len(ids),
                         f"only {len(got)} of {len(ids)} queued segments delivered after SIGTERM")

    def test_vii_sigterm_with_unreachable_api_exits_after_grace(self):
        self.fake.set_default_fault(Fault.stall(60))
        daemon = self.start_xrayd(config={"ShutdownGraceSeconds": 2})
        self.send_segments(daemon, 130)
        daemon.wait_metrics(lambda m: m.received >= 130 and m["xrayd_batches_in_flight"] >= 2, 5)
        t_term = time.monotonic()
        rc = daemon.terminate(timeout=20)
        took = time.monotonic() - t_term
        self.assertEqual(rc, 0, daemon.log_tail())
        self.assertGreaterEqual(took, 1.5, "exited before the grace period with segments undelivered")
        self.assertLess(took, 6, f"exit took {took:.1f} s with ShutdownGraceSeconds: 2")
        self.assertEqual(self.fake.accepted_documents(), [])
        stopped = re.search(r"Stopped: received (\d+), sent (\d+), spilled (\d+), rejected (\d+), failed (\d+)",
                            daemon.log_text())
        if stopped:  # the closing summary line, when the daemon prints one
            received, sent, spilled, rejected, failed = map(int, stopped.groups())
            self.assertEqual((received, sent, failed), (130, 0, 130), stopped.group(0))

    # ---- (viii): bounded memory ----
    def test_viii_buffer_bound_under_flood(self):
        self.fake.set_default_fault(Fault.stall(30, then=Fault.close()))
        daemon = self.start_xrayd(buffer_mb=3, request_timeout=1, config={"MaxAttempts": 30})
        m0 = daemon.metrics()
        self.assertEqual(m0["xrayd_buffer_capacity_bytes"], 3 * MiB, m0.brief())

        samples = {"max_bytes": 0, "max_segments": 0, "n": 0, "errors": 0}
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                try:
                    m = daemon.metrics(timeout=1)
                except OSError:
                    samples["errors"] += 1
                    continue
                samples["max_bytes"] = max(samples["max_bytes"], m["xrayd_buffer_bytes"])
                samples["max_segments"] = max(samples["max_segments"], m["xrayd_buffer_segments"])
                samples["n"] += 1
                stop.wait(0.01)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            t0 = time.monotonic()
            ids = self.send_segments(daemon, 20000, size=1024, name="flood", pace_every=200, pause=0.001)
            flood_s = time.monotonic() - t0
            time.sleep(1.0)
            m_stalled = daemon.metrics()
            rss_kb = daemon.rss_kb()
            # The API recovers.
            self.fake.clear_faults()
            self.fake.release_stalls()
            m = daemon.wait_metrics(lambda m: m["xrayd_buffer_segments"] == 0 and m["xrayd_batches_in_flight"] == 0
                                    and m.balanced() and m.received > 0, 40, interval=0.1)
        finally:
            stop.set()
            poller.join(timeout=5)
        print(f"  flood: {len(ids)} datagrams in {flood_s:.1f} s; while stalled: {m_stalled.brief()}; "
              f"RSS {rss_kb // 1024} MiB; peak buffer {samples['max_bytes'] / MiB:.2f} MiB / "
              f"{samples['max_segments']:.0f} segments over {samples['n']} polls; after: {m.brief()}")
        self.assertGreater(samples["n"], 20, "too few /metrics samples")
        self.assertLessEqual(samples["max_bytes"], 3 * MiB, "xrayd_buffer_bytes went over -m 3")
        self.assertGreater(samples["max_bytes"], 2 * MiB, "the flood never filled the buffer: test is vacuous")
        self.assertGreater(m_stalled.spilled, 0, "nothing spilled although the buffer was full")
        self.assertEqual(m.received, m.sent + m.spilled + m.rejected + m.failed,
                         f"counters do not add up: {m.brief()}")
        self.assertEqual(m.rejected, 0, m.brief())
        self.assertEqual(m.failed, 0, m.brief())
        self.assertGreater(m.sent, 0)
        accepted = self.fake.accepted_ids()
        self.assertEqual(len(accepted), len(set(accepted)), "a segment was accepted twice")
        self.assertEqual(len(accepted), m.sent, "xrayd_segments_sent_total != segments X-Ray accepted")
        self.assertTrue(set(accepted) <= set(ids))
        self.assertLessEqual(m.received, len(ids))
        self.assert_all_signed()
        self.assert_protocol_clean()
        self.assertTrue(daemon.alive())

    # ---- batching, endpoints ----
    def test_partial_batch_flushed_after_one_second(self):
        daemon = self.start_xrayd()
        t0 = time.monotonic()
        ids = self.send_segments(daemon, 3)
        missing = self.fake.wait_for_ids(ids, 5)
        took = time.monotonic() - t0
        self.assertFalse(missing, self.fake.summary())
        self.assertEqual(len(self.fake.trace_requests()), 1)
        self.assertGreaterEqual(took, 0.8, f"a 3-segment batch went out after {took:.2f} s, before the 1 s flush")
        self.assertLess(took, 2.5, f"a 3-segment batch took {took:.2f} s to go out (flush interval 1 s)")

    def test_health_and_metrics_endpoints(self):
        import urllib.error
        import urllib.request
        daemon = self.start_xrayd()
        base = f"http://127.0.0.1:{daemon.health_port}"
        for path in ("/healthz", "/readyz"):
            with urllib.request.urlopen(base + path, timeout=2) as r:
                self.assertEqual(r.status, 200, path)
        with urllib.request.urlopen(base + "/metrics", timeout=2) as r:
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers.get("Content-Type", "").startswith("text/plain"), r.headers.get("Content-Type"))
            text = r.read().decode()
        for name, kind in [("xrayd_segments_received_total", "counter"), ("xrayd_segments_sent_total", "counter"),
                           ("xrayd_segments_rejected_total", "counter"), ("xrayd_segments_spilled_total", "counter"),
                           ("xrayd_segments_failed_total", "counter"), ("xrayd_export_retries_total", "counter"),
                           ("xrayd_buffer_bytes", "gauge")]:
            self.assertIn(f"# TYPE {name} {kind}\n", text)
        m = harness.Metrics(harness.parse_metrics(text))
        for reason in ("bad_header", "bad_json", "invalid_segment", "too_large"):
            self.assertIn(f'xrayd_segments_rejected_total{{reason="{reason}"}}', m)
        for reason in ("unprocessed", "permanent_error", "retries_exhausted", "shutdown"):
            self.assertIn(f'xrayd_segments_failed_total{{reason="{reason}"}}', m)
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + "/nope", timeout=2)
        self.assertEqual(e.exception.code, 404)

    # ---- connections ----
    def test_keepalive_connections_are_reused(self):
        daemon = self.start_xrayd()
        ids = []
        for _ in range(12):
            ids += self.send_segments(daemon, 50, pace_every=0)
            self.fake.wait_for(lambda f, n=len(ids): len(f.accepted_ids()) >= n, 5)
        self.assert_all_delivered(daemon, ids)
        n_req = len(self.fake.trace_requests())
        self.assertGreaterEqual(n_req, 12)
        self.assertLessEqual(self.fake.connections, 8,
                             f"{n_req} requests over {self.fake.connections} connections: keep-alive not used")


if __name__ == "__main__":
    harness.main()
