#!/usr/bin/env python3
"""The exporter pipeline (issue 12) under a UDP flood beyond its capacity: a 3 MB memory bound (xrayd's minimum), a
1 MB spool, a back-end that answers slowly, and ~40,000 1 KB datagrams sent as fast as this process
can. What the kernel drops before xrayd reads it was never received (not acknowledged, not counted);
everything xrayd received is delivered exactly once or counted as dropped with a bounds reason
(queue_full, spool_full, spool_busy, ...), and received = delivered + queued + spooled + sum(dropped) holds
during the flood and after it.

    python3 tests/e2e/test_pipeline_flood.py --xrayd build/xrayd
"""

import random
import threading
import time

import harness
import fault_backend as fb
from serve_harness import known_bug

N = 40000


class PipelineFloodTest(fb.pipeline_test_case()):

    def test_udp_flood_beyond_capacity(self):
        spool = self.temp_dir()
        self.backend.set_mode("slow", delay=0.3)
        daemon = self.start_xrayd(spool_dir=spool, buffer_mb=3, request_timeout=5,
                                  args=["--spool-max-mb", "1", "--retry-max-elapsed", "30s"])
        rng = random.Random()
        docs = [fb.make_incompressible(harness.make_segment(name=f"flood-{i}", pad_to=1000, rng=rng))
                for i in range(N)]
        ids = [d["id"] for d in docs]
        payloads = [harness.datagram(d) for d in docs]

        checks = {"n": 0, "unbalanced": []}
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                try:
                    a = fb.account(daemon.metrics(timeout=2), "xray")
                except OSError:
                    continue
                checks["n"] += 1
                if not a.balanced():
                    checks["unbalanced"].append(a.brief())
                stop.wait(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        sender = harness.UdpSender(daemon.udp_port)
        t0 = time.monotonic()
        try:
            sender.send_all(payloads)
        finally:
            sender.close()
        flood_s = time.monotonic() - t0
        m = daemon.wait_metrics(lambda m: fb.account(m, "xray").dropped_total > 0, 10)
        stop.set()
        watcher.join(5)
        a = fb.assert_invariant(self, m, "xray")
        self.print_timing(f"flood of {N} datagrams", flood_s)
        self.assertGreater(checks["n"], 0)
        self.assertEqual(checks["unbalanced"], [], "counters did not add up during the flood")
        self.assertGreater(a.received, 0, a.brief())
        self.assertGreater(a.dropped_total, 0, f"a flood of {N} KB into 4 MB of room dropped nothing: {a.brief()}")
        # spool_busy: the spool's writer fell behind the flood (the UDP thread does not wait for the disk).
        self.assertEqual(a.drop_reasons - {"queue_full", "spool_full", "spool_busy", "expired", "retries_exhausted"},
                         set(),
                         f"drop reasons a flood should not cause: {a.brief()}")
        self.assertTrue(daemon.alive(), "xrayd died in the flood")

        self.backend.set_mode("ok")
        t0 = time.monotonic()
        m = fb.wait_idle(daemon, "xray", 25)
        self.print_timing("drain after the flood", time.monotonic() - t0)
        a = fb.assert_invariant(self, m, "xray")
        self.assertTrue(a.idle(), a.brief())
        got = self.backend.distinct_ids()
        self.assertFalse(got - set(ids), "ids nobody sent")
        self.assertEqual(len(got), a.delivered, f"back-end has {len(got)} distinct, xrayd counts {a.delivered} ({a.brief()})")
        self.assertEqual(a.received - a.delivered, a.dropped_total, a.brief())
        self.assertEqual(self.backend.duplicates(), 0, "duplicates with no lost answer")
        self.assertLessEqual(a.received, N)
        print(f"  [flood: sent {N}, received {a.received}, {a.brief()}]")


if __name__ == "__main__":
    harness.main()
