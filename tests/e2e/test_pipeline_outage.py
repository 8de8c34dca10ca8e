#!/usr/bin/env python3
"""The exporter pipeline (issue 12) through a back-end outage, scaled from minutes down to seconds.

A FaultBackend answers 503 or 429 (with Retry-After) for OUTAGE_S seconds while segments arrive over
UDP at a steady rate, then recovers. --retry-max-elapsed is shorter than the outage, so:

  * with a spool (room to keep the data), everything is kept and delivered after recovery, exactly
    once, nothing dropped;
  * without a spool, with a 2 s retry budget and a 3 MB memory bound, the bounds force drops: counted by reason, and
    every segment is either delivered exactly once or counted as dropped.

After each fault: received = delivered + queued + spooled + sum(dropped) for the exporter, and the
back-end's record of ids agrees with xrayd's counters.

    python3 tests/e2e/test_pipeline_outage.py --xrayd build/xrayd [-k name]
"""

import time

import harness
import fault_backend as fb
from serve_harness import known_bug

OUTAGE_S = 8
RATE = 150  # segments/s: 1,200 segments over the outage


class PipelineOutageTest(fb.pipeline_test_case()):

    def run_outage(self, daemon, mode, **mode_params):
        """Back-end in `mode` for OUTAGE_S while segments flow; checks the counters add up mid-outage
        and that nothing was delivered; returns (ids sent, metrics at the end of the outage)."""
        self.backend.set_mode(mode, **mode_params)
        sender = fb.RateSender(daemon.udp_port, RATE, size=600).start()
        mid_checks = 0
        t_end = time.monotonic() + OUTAGE_S
        try:
            while time.monotonic() < t_end:
                time.sleep(1.0)
                m = daemon.metrics()
                fb.assert_invariant(self, m, "xray")  # at all times, not only at rest
                mid_checks += 1
        finally:
            ids = sender.stop()
        m = daemon.wait_metrics(lambda m: fb.account(m, "xray").received >= len(ids), 5)
        a = fb.assert_invariant(self, m, "xray")
        self.assertGreaterEqual(mid_checks, OUTAGE_S - 2)
        self.assertEqual(a.delivered, 0, f"delivered during a total outage: {a.brief()}")
        self.assertGreater(a.retries, 0, f"no retries during the outage: {a.brief()}")
        return ids, m

    def recover(self, daemon, ids, timeout=30.0):
        self.backend.set_mode("ok")
        t0 = time.monotonic()
        m = fb.wait_idle(daemon, "xray", timeout,
                         extra=lambda m: fb.account(m, "xray").delivered + fb.account(m, "xray").dropped_total >= len(ids))
        self.print_timing("drain after recovery", time.monotonic() - t0)
        return fb.assert_invariant(self, m, "xray")

    def test_5xx_outage_longer_than_retry_budget_is_kept_in_the_spool(self):
        spool = self.temp_dir()
        daemon = self.start_xrayd(spool_dir=spool, args=["--retry-max-elapsed", "3s", "--spool-max-mb", "64"],
                                  request_timeout=2)
        ids, m_out = self.run_outage(daemon, "5xx", status=503)
        a_out = fb.account(m_out, "xray")
        self.assertEqual(a_out.dropped_total, 0, f"dropped with room in the spool: {a_out.brief()}")
        self.assertGreater(a_out.spooled, 0, f"a {OUTAGE_S} s outage past --retry-max-elapsed 3s spooled nothing: "
                                             f"{a_out.brief()}")
        a = self.recover(daemon, ids)
        fb.assert_exactly_once_or_dropped(self, self.backend, a, ids)
        self.assertEqual(a.dropped_total, 0, a.brief())
        self.assertEqual(len(self.backend.distinct_ids()), len(ids))
        self.assert_all_signed()
        self.assert_protocol_clean()

    def test_429_with_retry_after_outage_is_kept(self):
        spool = self.temp_dir()
        daemon = self.start_xrayd(spool_dir=spool, args=["--retry-max-elapsed", "3s", "--spool-max-mb", "64"],
                                  request_timeout=2)
        ids, m_out = self.run_outage(daemon, "429", retry_after=2)
        a_out = fb.account(m_out, "xray")
        self.assertEqual(a_out.dropped_total, 0, f"dropped with room in the spool: {a_out.brief()}")
        self.assertGreater(sum(1 for r in self.backend.trace_requests() if r.outcome == "status 429"), 0)
        a = self.recover(daemon, ids)
        fb.assert_exactly_once_or_dropped(self, self.backend, a, ids)
        self.assertEqual(a.dropped_total, 0, a.brief())

    def test_retry_after_is_honoured_across_the_spool_handoff(self):
        """Retry-After: 2 with --retry-max-elapsed 3s: the same batch must not reach the back-end again
        sooner than ~2 s after a throttled answer — neither by the memory retry loop nor when the batch
        moves to the spool after its budget and is replayed from there."""
        spool = self.temp_dir()
        daemon = self.start_xrayd(spool_dir=spool, args=["--retry-max-elapsed", "3s"], request_timeout=2)
        self.backend.set_mode("429", retry_after=2)
        sender = fb.RateSender(daemon.udp_port, RATE, size=600).start()
        time.sleep(7)
        ids = sender.stop()
        by_batch = {}
        for r in self.backend.trace_requests():
            by_batch.setdefault(tuple(sorted(fb.doc_ids(r.documents))), []).append(r.received_at)
        gaps = sorted(b - a for ts in by_batch.values() for a, b in zip(ts, ts[1:]))
        self.assertTrue(gaps, "no batch was retried")
        a = self.recover(daemon, ids)
        fb.assert_exactly_once_or_dropped(self, self.backend, a, ids)
        self.assertGreaterEqual(gaps[0], 1.8, f"a batch was re-sent {gaps[0]:.3f} s after a 429 with Retry-After: 2 "
                                              f"({sum(1 for g in gaps if g < 1.8)} of {len(gaps)} re-sends too early)")

    def test_outage_without_room_drops_what_the_bounds_force_counted(self):
        # No spool, 3 MB of memory (xrayd's minimum), and a retry budget (2 s) that runs out long before
        # recovery: what arrived more than ~2 s before the back-end came back is dropped, counted.
        daemon = self.start_xrayd(buffer_mb=3, args=["--retry-max-elapsed", "2s"], request_timeout=2)
        ids, m_out = self.run_outage(daemon, "5xx", status=500)
        a_out = fb.account(m_out, "xray")
        self.assertEqual(a_out.spooled, 0, f"spooled without --spool-dir: {a_out.brief()}")
        self.assertGreater(a_out.dropped_total, 0, f"nothing dropped after a {OUTAGE_S} s outage with a 2 s retry "
                                                   f"budget and no spool: {a_out.brief()}")
        self.assertEqual(a_out.drop_reasons - {"retries_exhausted", "queue_full", "expired"}, set(),
                         f"unexpected drop reasons for an outage: {a_out.brief()}")
        a = self.recover(daemon, ids)
        fb.assert_exactly_once_or_dropped(self, self.backend, a, ids)
        self.assertGreater(a.delivered, 0, f"nothing delivered after recovery: {a.brief()}")


if __name__ == "__main__":
    harness.main()
