#!/usr/bin/env python3
"""Two exporters side by side (issue 12): `xrayd serve --forward --endpoint <dead back-end>`.

The X-Ray exporter's back-end is dead — first nothing listens on its port (connection refused), then
a FaultBackend that stalls every request mid-response. Meanwhile segments arrive over UDP. The store
exporter must not notice: every segment is readable through BatchGetTraces within seconds, exactly
once, while the X-Ray exporter keeps (queue, spool) or drops what it cannot deliver, counted. Both
exporters' counters add up: received = delivered + queued + spooled + sum(dropped).

    python3 tests/e2e/test_pipeline_forward.py --xrayd build/xrayd
"""

import collections
import json
import os
import socket
import sys
import time
import unittest
import urllib.request

import harness
import serve_harness as sh
import fault_backend as fb
import fake_xray

N = 600


class PipelineForwardTest(unittest.TestCase):

    def setUp(self):
        self._t0 = time.monotonic()
        self.servers = []
        self.backend = None

    def tearDown(self):
        for s in self.servers:
            if s.proc is not None and (s.proc.poll() not in (None, 0, -9)):
                print(f"\n--- xrayd serve log (exit {s.proc.poll()}) ---\n{s.log_tail(60)}", file=sys.stderr)
            s.kill()
        if self.backend is not None:
            self.backend.stop()
        for s in self.servers:
            s.cleanup()
        print(f"  [{self.id().split('.')[-1]}: {time.monotonic() - self._t0:.1f} s]", file=sys.stderr)

    def serve(self, endpoint: str, spool: bool):
        health = harness.free_tcp_port()
        args = ["--forward", "--endpoint", endpoint, "-n", fake_xray.TEST_REGION, "--request-timeout", "1",
                "--retry-max-elapsed", "2s", "--health-address", f"127.0.0.1:{health}"]
        s = sh.XraydServe(extra_args=args)
        if spool:
            s.extra_args += ["--spool-dir", os.path.join(s.dir, "spool"), "--spool-max-mb", "64"]
        self.servers.append(s)
        # clean_env gives xrayd the fake's test credentials: forwarding signs with them.
        s.start()
        s.health_port = health
        return s

    def metrics(self, s):
        with urllib.request.urlopen(f"http://127.0.0.1:{s.health_port}/metrics", timeout=2) as r:
            return harness.Metrics(harness.parse_metrics(r.read().decode()))

    def check(self, s, t_sent, ids_by_trace, n):
        # The store path: everything readable within seconds, though X-Ray is dead.
        s.wait_for_segments(ids_by_trace, timeout=15)
        visible_after = time.monotonic() - t_sent
        print(f"  [all {n} segments readable {visible_after:.1f} s after sending, X-Ray exporter dead]", file=sys.stderr)
        self.assertLess(visible_after, 15)
        counts = collections.Counter()
        tids = list(ids_by_trace)
        for i in range(0, len(tids), 5):
            status, out = s.call("/Traces", {"TraceIds": tids[i:i + 5]})
            self.assertEqual(status, 200, out)
            for t in out.get("Traces", []):
                for seg in t.get("Segments", []):
                    counts[json.loads(seg["Document"])["id"]] += 1
        want = {i for ids in ids_by_trace.values() for i in ids}
        self.assertEqual(set(counts), want, "the store holds other ids than were sent")
        self.assertEqual([i for i, c in counts.items() if c > 1], [], "stored more than once")

        m = harness.Metrics()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = self.metrics(s)
            st = fb.account(m, "store")
            if st.delivered >= n and st.idle():
                break
            time.sleep(0.1)
        store = fb.account(m, "store")
        xray = fb.account(m, "xray")
        for name in ("store", "xray"):
            a = fb.account(m, name)
            self.assertTrue(a.present, f"no xrayd_exporter_*{{exporter=\"{name}\"}} series")
            self.assertTrue(a.balanced(), a.brief())
        self.assertEqual((store.received, store.delivered, store.dropped_total), (n, n, 0), store.brief())
        self.assertEqual(xray.received, n, xray.brief())
        self.assertEqual(xray.delivered, 0, xray.brief())
        self.assertEqual(xray.queued + xray.spooled + xray.dropped_total, n, xray.brief())
        self.assertTrue(s.alive())
        return xray

    def send(self, s, n):
        ids_by_trace, docs = {}, []
        for i in range(n):
            tid = sh.trace_id()
            d = sh.segment(tid, name=f"fwd-{i}")
            ids_by_trace[tid] = [d["id"]]
            docs.append(d)
        t = time.monotonic()
        sh.send_udp(s.udp_port, docs)
        return t, ids_by_trace

    def test_dead_xray_endpoint_refused(self):
        dead = harness.free_tcp_port()  # nothing listens here
        s = self.serve(f"http://127.0.0.1:{dead}", spool=True)
        t, ids = self.send(s, N)
        xray = self.check(s, t, ids, N)
        print(f"  [refused: {xray.brief()}]", file=sys.stderr)
        # Past the 2 s retry budget the X-Ray exporter's backlog moves to its spool; nothing is dropped.
        xray = self.later(s, lambda a: a.spooled > 0)
        self.assertEqual(xray.dropped_total, 0, xray.brief())
        print(f"  [refused, later: {xray.brief()}]", file=sys.stderr)

    def later(self, s, predicate, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            m = self.metrics(s)
            xray, store = fb.account(m, "xray"), fb.account(m, "store")
            if predicate(xray) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertTrue(predicate(xray), xray.brief())
        for a in (xray, store):
            self.assertTrue(a.balanced(), a.brief())
        self.assertEqual((store.received, store.delivered), (N, N), store.brief())
        self.assertEqual(xray.received, N, xray.brief())
        self.assertEqual(xray.delivered, 0, xray.brief())
        return xray

    def test_dead_xray_endpoint_stalling(self):
        self.backend = fb.FaultBackend().start()
        self.backend.set_mode("stall", seconds=60, processed=False)
        s = self.serve(self.backend.endpoint, spool=False)
        t, ids = self.send(s, N)
        xray = self.check(s, t, ids, N)
        print(f"  [stalling: {xray.brief()}]", file=sys.stderr)
        # No spool: past the retry budget (2 s, each attempt cut at 1 s) the backlog is dropped, counted.
        xray = self.later(s, lambda a: a.dropped_total == N)
        self.assertEqual(xray.drop_reasons, {"retries_exhausted"}, xray.brief())
        self.assertGreater(len(self.backend.trace_requests()), 0, "the X-Ray exporter never tried")


if __name__ == "__main__":
    harness.main()
