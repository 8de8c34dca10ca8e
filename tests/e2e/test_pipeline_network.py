#!/usr/bin/env python3
"""The exporter pipeline (issue 12) against a back-end that misbehaves on the wire:

  * stall mid-response: the back-end processes the batch, sends the status line and headers, then
    hangs without the body. xrayd's --request-timeout ends the request and the batch is retried: the
    back-end then holds it twice. Those duplicates are the only ones allowed, bounded by the ids the
    stalled requests carried (the answer was lost, so the exporter cannot know they arrived);
  * connection reset (TCP RST instead of an answer): retried, delivered exactly once;
  * slow answers (0.8 s each, trickled): nothing lost, nothing duplicated, the queue absorbs the
    difference.

After each: received = delivered + queued + spooled + sum(dropped) for the exporter, and every
segment is delivered exactly once (or within the stated duplicate bound) or counted as dropped.

    python3 tests/e2e/test_pipeline_network.py --xrayd build/xrayd [-k name]
"""

import time

import harness
import fault_backend as fb

RATE = 150


class PipelineNetworkTest(fb.pipeline_test_case()):

    def flow(self, daemon, seconds):
        sender = fb.RateSender(daemon.udp_port, RATE, size=500).start()
        time.sleep(seconds)
        return sender

    def finish(self, daemon, sender, *, timeout=30.0, allowed_duplicates=0, why=""):
        ids = sender.stop()
        t0 = time.monotonic()
        m = fb.wait_idle(daemon, "xray", timeout,
                         extra=lambda m: fb.account(m, "xray").delivered + fb.account(m, "xray").dropped_total >= len(ids))
        self.print_timing("drain", time.monotonic() - t0)
        a = fb.assert_invariant(self, m, "xray")
        dups = fb.assert_exactly_once_or_dropped(self, self.backend, a, ids, allowed_duplicates=allowed_duplicates,
                                                 why_duplicates=why)
        self.assertEqual(a.dropped_total, 0, f"dropped while the back-end recovered within the retry budget: {a.brief()}")
        self.assertTrue(daemon.alive(), "xrayd died")
        self.assert_all_signed()
        self.assert_protocol_clean()
        return a, dups

    def test_stall_mid_response(self):
        spool = self.temp_dir()
        daemon = self.start_xrayd(spool_dir=spool, request_timeout=1, args=["--retry-max-elapsed", "60s"])
        sender = self.flow(daemon, 1.0)
        self.backend.set_mode("stall", seconds=30, processed=True)
        time.sleep(5.0)
        stalled = [r for r in self.backend.trace_requests() if "stall-mid-response" in r.outcome]
        self.assertGreater(len(stalled), 0, f"no request reached the stall: {self.backend.stats()}")
        self.backend.set_mode("ok")  # also releases the hanging connections
        time.sleep(2.0)
        stalled_ids = len(self.backend.stalled_ids)
        a, dups = self.finish(daemon, sender, allowed_duplicates=stalled_ids,
                              why=f"{stalled_ids} ids were processed by requests whose answer stalled mid-response")
        self.assertGreater(a.retries, 0, a.brief())
        unexplained = set(self.backend.duplicate_ids()) - set(self.backend.stalled_ids)
        self.assertFalse(unexplained, f"{len(unexplained)} duplicated ids were never in a stalled request")
        print(f"  [stall: {len(stalled)} stalled requests carrying {stalled_ids} ids; {dups} duplicates]")

    def test_connection_resets(self):
        daemon = self.start_xrayd(request_timeout=2, args=["--retry-max-elapsed", "60s"])
        sender = self.flow(daemon, 1.0)
        self.backend.set_mode("reset")
        time.sleep(5.0)
        resets = sum(1 for r in self.backend.trace_requests() if r.outcome == "reset")
        self.assertGreater(resets, 0, f"no request was reset: {self.backend.stats()}")
        self.backend.set_mode("ok")
        time.sleep(1.0)
        a, _ = self.finish(daemon, sender)  # a reset request was not processed: no duplicate is acceptable
        self.assertGreaterEqual(a.retries, 1, a.brief())

    def test_slow_answers(self):
        self.backend.set_mode("slow", delay=0.5, trickle=0.3)
        daemon = self.start_xrayd(request_timeout=5, args=["--retry-max-elapsed", "60s"])
        sender = self.flow(daemon, 8.0)
        slow = sum(1 for r in self.backend.trace_requests() if r.outcome == "slow")
        self.assertGreater(slow, 0, self.backend.stats())
        a, _ = self.finish(daemon, sender, timeout=40)
        self.assertEqual(self.backend.duplicates(), 0)


if __name__ == "__main__":
    harness.main()
