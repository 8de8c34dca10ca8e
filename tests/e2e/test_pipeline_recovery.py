#!/usr/bin/env python3
"""How soon the pipeline notices a back end that came back, and the spool's gauges on /metrics.

A FaultBackend answers 503 (down, not throttling) for OUTAGE_S seconds while segments arrive over
UDP; --retry-max-elapsed 1s sends memory to the spool. The exponential backoff reaches several
seconds by then (200 ms doubling: 6.4 s after 6 failures; its cap is 15 s), but a down destination
is probed at most every second (the exporter's probe interval), so the first delivery must follow
the back end's return within about a second. Throttling keeps the exponential backoff (unit-tested
in exporter_test; test_pipeline_outage checks Retry-After).

Meanwhile /metrics, scraped over HTTP, shows the spool: bytes on disk, appended raw and disk bytes,
records pending and the oldest one's age, per exporter; after the drain, nothing pending.

    python3 tests/e2e/test_pipeline_recovery.py --xrayd build/xrayd
"""

import time

import harness
import fault_backend as fb

OUTAGE_S = 7
RATE = 150
FIRST_DELIVERY_BOUND_S = 2.5  # probe interval 1 s, full jitter below it, plus a request and this loaded machine


def gauge(m: dict, name: str) -> float:
    return fb.metric_sum(m, name, exporter="xray")


class PipelineRecoveryTest(fb.pipeline_test_case()):

    def test_first_delivery_follows_a_returning_back_end_within_the_probe_interval(self):
        spool = self.temp_dir()
        daemon = self.start_xrayd(spool_dir=spool, args=["--retry-max-elapsed", "1s", "--spool-max-mb", "64"],
                                  request_timeout=2)
        self.backend.set_mode("5xx", status=503)
        sender = fb.RateSender(daemon.udp_port, RATE, size=600).start()
        time.sleep(OUTAGE_S)
        ids = sender.stop()
        m = daemon.wait_metrics(lambda m: fb.account(m, "xray").received >= len(ids)
                                and fb.account(m, "xray").queued == 0, 5)
        a = fb.assert_invariant(self, m, "xray")
        self.assertEqual(a.delivered, 0, a.brief())
        self.assertGreater(a.spooled, 0, a.brief())
        # The spool's gauges, as a scrape shows them mid-outage.
        text = self.metrics_text(daemon)
        for family in ("xrayd_spool_disk_bytes", "xrayd_spool_pending_records",
                       "xrayd_spool_oldest_record_age_seconds", "xrayd_spool_appended_raw_bytes_total",
                       "xrayd_spool_appended_disk_bytes_total"):
            self.assertIn(f"# HELP {family} ", text)
        self.assertGreater(gauge(m, "xrayd_spool_disk_bytes"), 0)
        self.assertGreater(gauge(m, "xrayd_spool_pending_records"), 0)
        self.assertGreater(gauge(m, "xrayd_spool_oldest_record_age_seconds"), OUTAGE_S / 2)
        self.assertGreater(gauge(m, "xrayd_spool_appended_raw_bytes_total"),
                           gauge(m, "xrayd_spool_appended_disk_bytes_total"), "segment JSON compresses")
        requests_in_outage = len(self.backend.trace_requests())

        self.backend.set_mode("ok")
        back = time.monotonic()
        deadline = back + 20
        first = None
        while first is None and time.monotonic() < deadline:
            accepted = [r.received_at for r in self.backend.trace_requests() if r.outcome == "ok"]
            first = min(accepted) if accepted else None
            time.sleep(0.02)
        self.assertIsNotNone(first, "nothing delivered 20 s after the back end returned")
        self.print_timing("first delivery after the back end returned", first - back)
        self.assertLess(first - back, FIRST_DELIVERY_BOUND_S,
                        f"first delivery {first - back:.2f} s after the back end returned")
        # Probes, not a storm: a request per second at most (plus memory batches failing once each).
        self.assertLess(requests_in_outage, 4 * OUTAGE_S + 20, f"{requests_in_outage} requests during the outage")

        m = fb.wait_idle(daemon, "xray", 30, extra=lambda m: fb.account(m, "xray").delivered >= len(ids))
        a = fb.assert_invariant(self, m, "xray")
        fb.assert_exactly_once_or_dropped(self, self.backend, a, ids)
        self.assertEqual(a.dropped_total, 0, a.brief())
        self.assertEqual(gauge(m, "xrayd_spool_pending_records"), 0)
        self.assertEqual(gauge(m, "xrayd_spool_oldest_record_age_seconds"), 0)


if __name__ == "__main__":
    harness.main()
