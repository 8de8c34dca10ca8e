#!/usr/bin/env python3
"""The durable spool (issue 12) across a crash and a shutdown, with the back-end down:

  * SIGKILL mid-outage, once everything received is in the spool, then a new xrayd on the same
    --spool-dir with the back-end back: every segment is delivered, exactly once (the back-end
    accepted nothing before the crash, so there is nothing a replay could repeat);
  * SIGKILL mid-replay (back-end slow, the spool half drained), then a restart: everything is
    delivered; duplicates are allowed only for what the crash made ambiguous — ids the back-end
    accepted that the killed xrayd had not yet counted as delivered at its last /metrics scrape —
    and are counted and printed;
  * SIGTERM mid-outage: exit 0 within the grace period with what was queued written to the spool;
    a restart delivers all of it;
  * SIGTERM under a flood with a slow back-end: exit 0, the exit line's accounting adds up with nothing
    dropped, and a restart delivers every spooled segment; duplicates only from requests in flight at
    SIGTERM (accepted by the back-end after xrayd stopped reading their answers).

    python3 tests/e2e/test_pipeline_restart.py --xrayd build/xrayd [-k name]
"""

import random
import re
import signal
import sys
import threading
import time

import harness
import fault_backend as fb
from serve_harness import known_bug

RATE = 200


class PipelineRestartTest(fb.pipeline_test_case()):

    def outage_until_spooled(self, daemon, seconds):
        """Sends for `seconds` with the back-end down, then waits until everything received is in the
        spool (nothing left only in memory). Returns the ids sent."""
        self.backend.set_mode("5xx")
        sender = fb.RateSender(daemon.udp_port, RATE, size=600).start()
        time.sleep(seconds)
        ids = sender.stop()
        m = daemon.wait_metrics(lambda m: fb.account(m, "xray").received >= len(ids)
                                and fb.account(m, "xray").spooled == len(ids), 8, interval=0.1)
        a = fb.assert_invariant(self, m, "xray")
        self.assertEqual(a.received, len(ids), a.brief())
        self.assertEqual(a.spooled, len(ids), f"not everything received reached the spool: {a.brief()}")
        return ids

    def restart_and_drain(self, spool, ids, timeout=30.0):
        self.backend.set_mode("ok")
        t0 = time.monotonic()
        daemon2 = self.start_xrayd(spool_dir=spool, args=["--retry-max-elapsed", "60s"])
        self.backend.wait_for(lambda b: set(ids) <= b.distinct_ids(), timeout)
        m = fb.wait_idle(daemon2, "xray", 10)
        self.print_timing("restart to all delivered", time.monotonic() - t0)
        a = fb.assert_invariant(self, m, "xray")
        missing = set(ids) - self.backend.distinct_ids()
        self.assertFalse(missing, f"{len(missing)} of {len(ids)} spooled segments never delivered after the restart "
                                  f"({a.brief()}; back-end {self.backend.stats()})")
        self.assertFalse(self.backend.distinct_ids() - set(ids), "ids nobody sent")
        self.assertEqual(a.dropped_total, 0, a.brief())
        return daemon2, a

    def test_sigkill_mid_outage_then_restart_delivers_everything_once(self):
        spool = self.temp_dir()
        daemon = self.start_xrayd(spool_dir=spool, args=["--retry-max-elapsed", "1s"], request_timeout=1)
        ids = self.outage_until_spooled(daemon, 5)
        daemon.proc.kill()
        daemon.proc.wait(5)
        self.assertEqual(len(self.backend.distinct_ids()), 0, "the back-end accepted something during the outage")
        _, a = self.restart_and_drain(spool, ids)
        self.assertEqual(self.backend.duplicates(), 0,
                         f"{self.backend.duplicates()} duplicates though nothing was accepted before the crash")

    def test_sigkill_mid_replay_duplicates_bounded(self):
        spool = self.temp_dir()
        daemon = self.start_xrayd(spool_dir=spool, args=["--retry-max-elapsed", "1s"], request_timeout=2)
        ids = self.outage_until_spooled(daemon, 5)
        # Recovery, but slow: kill while the spool is half replayed.
        self.backend.set_mode("slow", delay=0.2)
        self.backend.wait_for(lambda b: len(b.distinct_ids()) >= len(ids) // 2, 30)
        m_last = daemon.metrics()
        daemon.proc.kill()
        daemon.proc.wait(5)
        accepted_before_settle = len(self.backend.distinct_ids())
        # Several senders replay at once, so requests are still on the wire at the kill; the slow
        # back-end accepts them afterwards. Let those finish: they are ambiguous too (sent, never acked).
        time.sleep(1.5)
        accepted_at_kill = len(self.backend.distinct_ids())
        delivered_at_scrape = fb.account(m_last, "xray").delivered
        self.assertGreater(accepted_at_kill, 0)
        self.assertLess(accepted_before_settle, len(ids), "all delivered before the kill: the test killed too late")
        ambiguous = accepted_at_kill - delivered_at_scrape
        _, a = self.restart_and_drain(spool, ids)
        dups = self.backend.duplicates()
        print(f"  [kill mid-replay: {accepted_at_kill} of {len(ids)} accepted at the kill, {delivered_at_scrape} "
              f"counted delivered at the last scrape; {dups} duplicates after the restart]")
        self.assertLessEqual(dups, ambiguous,
                             f"{dups} duplicates, but only {ambiguous} ids were accepted by the back-end without xrayd "
                             f"having counted them delivered before the kill: the spool replays more than the crash "
                             f"made ambiguous")

    def test_sigterm_mid_outage_spools_the_rest_and_exits_0(self):
        spool = self.temp_dir()
        daemon = self.start_xrayd(spool_dir=spool, args=["--retry-max-elapsed", "60s"], request_timeout=1,
                                  config={"ShutdownGraceSeconds": 2})
        self.backend.set_mode("5xx")
        ids = []
        sender = fb.RateSender(daemon.udp_port, RATE, size=600).start()
        time.sleep(3)
        ids = sender.stop()
        daemon.wait_metrics(lambda m: fb.account(m, "xray").received >= len(ids), 5)
        t0 = time.monotonic()
        rc = daemon.terminate(timeout=20)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, daemon.log_tail())
        self.assertLess(took, 8, f"SIGTERM took {took:.1f} s with ShutdownGraceSeconds 2")
        self.print_timing("SIGTERM to exit", took)
        self.restart_and_drain(spool, ids)
        self.assertEqual(self.backend.duplicates(), 0)

    def test_sigterm_under_a_flood_loses_nothing_across_a_restart(self):
        """SIGTERM while datagrams pour in (~30k/s) and the back-end answers
        slowly (so memory holds a backlog and requests are in flight): exit 0 within the grace period;
        the exit line's accounting adds up with nothing dropped; after a restart on the same spool the
        back-end holds exactly what the first run delivered plus what it spooled. Duplicates are allowed
        only for the ids of requests in flight at SIGTERM (the back-end accepts them after its delay,
        when the exiting xrayd no longer reads the answer, so it spools them)."""
        spool = self.temp_dir()
        self.backend.set_mode("slow", delay=0.5)
        daemon = self.start_xrayd(spool_dir=spool, args=["--retry-max-elapsed", "60s"], request_timeout=5,
                                  config={"ShutdownGraceSeconds": 2})
        stop = threading.Event()
        sent = []

        def flood():
            # ~30k datagrams/s at most: forty times what the slow back-end takes (so memory holds a
            # backlog and the spool fills), and within what the spool writer keeps up with on a busy
            # CI machine. Flat out (~60k/s from this process) its hand-off overflowed now and then
            # under load: counted drops (spool_busy, by design: Offer never waits for the disk), but
            # not what this test is about.
            sender = harness.UdpSender(daemon.udp_port)
            rng = random.Random()
            try:
                while not stop.is_set():
                    started = time.monotonic()
                    for _ in range(200):
                        doc = harness.make_segment(name="term", pad_to=600, rng=rng)
                        sender.send(harness.datagram(doc))
                        sent.append(doc["id"])
                    time.sleep(max(0.0, 200 / 30000 - (time.monotonic() - started)))
            finally:
                sender.close()

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        time.sleep(3)
        t_term = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        stop.set()
        t.join(10)
        rc = daemon.terminate(timeout=20)
        took = time.monotonic() - t_term
        self.assertEqual(rc, 0, daemon.log_tail())
        self.assertLess(took, 8, f"SIGTERM took {took:.1f} s with ShutdownGraceSeconds 2")
        line = re.findall(r"Exporter xray: received (\d+), delivered (\d+), spooled (\d+), dropped (\d+)",
                          daemon.log_text())
        self.assertTrue(line, f"no exit accounting line for the xray exporter:\n{daemon.log_tail()}")
        received, delivered, spooled, dropped = map(int, line[-1])
        print(f"  [SIGTERM under a flood: {len(sent)} sent, exit line received={received} delivered={delivered} "
              f"spooled={spooled} dropped={dropped}; exit {took:.1f} s after SIGTERM]", file=sys.stderr)
        self.assertEqual(received, delivered + spooled + dropped, line[-1])
        self.assertEqual(dropped, 0, f"dropped at shutdown with a spool: {line[-1]}")
        self.assertGreater(spooled, 0, "nothing left to spool: the test did not load xrayd enough")
        in_flight = [r for r in self.backend.trace_requests() if r.received_at >= t_term - 1.0]
        ambiguous = sum(len(r.documents) for r in in_flight)
        self.backend.set_mode("ok")
        self.backend.release_stalls()
        time.sleep(0.6)  # the in-flight slow requests finish being accepted
        daemon2 = self.start_xrayd(spool_dir=spool, args=["--retry-max-elapsed", "60s"])
        m = fb.wait_idle(daemon2, "xray", 30, extra=lambda m: fb.account(m, "xray").received >= spooled)
        a2 = fb.assert_invariant(self, m, "xray")
        self.assertEqual(a2.received, spooled, f"the restart recovered {a2.received} of {spooled} spooled ({a2.brief()})")
        self.assertEqual(a2.dropped_total, 0, a2.brief())
        got = self.backend.distinct_ids()
        self.assertFalse(got - set(sent), "ids nobody sent")
        dups = self.backend.duplicates()
        # Each segment is counted delivered by exactly one of the two runs, and the back-end holds each:
        # distinct ids = first run's delivered + second run's delivered. (An in-flight request the back-end
        # accepted after the first run stopped reading was spooled, not counted: the second run delivers
        # it again — a duplicate at the back-end, not in the counters.)
        self.assertEqual(len(got), delivered + a2.delivered,
                         f"{len(got)} distinct at the back-end; runs delivered {delivered} + {a2.delivered}, {dups} duplicates")
        self.assertLessEqual(dups, ambiguous, f"{dups} duplicates, but requests in flight at SIGTERM carried only "
                                              f"{ambiguous} ids")
        in_flight_ids = {i for r in in_flight for i in fb.doc_ids(r.documents)}
        self.assertFalse(set(self.backend.duplicate_ids()) - in_flight_ids,
                         "a duplicated id was not in a request in flight at SIGTERM")
        print(f"  [after the restart: {a2.brief()}; {dups} duplicates (in flight at SIGTERM: {ambiguous} ids)]",
              file=sys.stderr)


if __name__ == "__main__":
    harness.main()
