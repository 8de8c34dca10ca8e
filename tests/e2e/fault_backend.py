"""A fault-injecting X-Ray back-end for the pipeline's end-to-end tests and bench/outage_bench.py.

FaultBackend is fake_xray.FakeXRay (a real HTTP/1.1 PutTraceSegments server on 127.0.0.1 that checks
every SigV4 signature and the API's contract) plus one *mode* that applies to every request from now
on, switchable at run time, from Python (set_mode) or over HTTP (POST {base}/_fault/mode):

  ok                  200 {"UnprocessedTraceSegments":[]}: the documents are accepted
  5xx                 status (default 503) with an AWS JSON error; nothing accepted
  429                 429 ThrottledException with Retry-After: retry_after (seconds; omitted if None)
  stall               the documents are processed (accepted: processed=True, the default) and the
                      status line and headers are sent with a Content-Length, then the server hangs
                      for `seconds` without a byte of body (mid-response), then closes. A client that
                      gives up and retries makes a duplicate — the back-end did process the batch;
                      the stall is where "exactly once" meets a lost answer. processed=False: nothing
                      is accepted (the client's retry is then the only delivery).
  reset               reads the request, then closes with SO_LINGER 0: the client sees a TCP RST
                      (ECONNRESET) instead of an answer. Nothing accepted.
  slow                accepted, then the answer is sent after `delay` seconds, its bytes trickled
                      over `trickle` more seconds (a slow but successful back-end)

It records every segment id it accepted (accepted_ids(), inherited) and counts the ids it accepted
more than once (duplicates(), duplicate_ids()). Ids accepted during a stall are also listed in
stalled_ids, so a test can bound the duplicates by what the stalls made ambiguous.

HTTP control (for a back-end in another process, e.g. `python3 fault_backend.py --port P`):
  POST {base}/_fault/mode   {"mode": "429", "retry_after": 2}   → {"mode": ...}
  GET  {base}/_fault/stats  → {"mode", "requests", "accepted", "distinct", "duplicates", "outcomes"}
Control requests are not PutTraceSegments requests: they are not signed and not recorded.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Optional

import fake_xray
from fake_xray import Fault, FakeXRay

MODES = ("ok", "5xx", "429", "stall", "reset", "slow")


class FaultBackend(FakeXRay):
    """A FakeXRay whose behaviour is one run-time switchable mode (see the module docstring)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.id_counts: collections.Counter = collections.Counter()
        self.stalled_ids: list[str] = []
        self._mode = "ok"
        self._params: dict = {}
        self.set_fault_function(self._mode_fault)

    # ---- modes ----
    def set_mode(self, mode: str, **params) -> "FaultBackend":
        """Switches every later request to `mode` (see MODES). Stalls in progress are released when
        leaving "stall", so a recovered back-end does not keep old connections hanging."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
        with self._lock:
            leaving_stall = self._mode == "stall" and mode != "stall"
            self._mode, self._params = mode, dict(params)
        if leaving_stall:
            self.release_stalls()
        return self

    @property
    def mode(self) -> str:
        with self._lock:
            return self._mode

    def _mode_fault(self, index: int, ids: list) -> Optional[Fault]:
        with self._lock:
            mode, p = self._mode, dict(self._params)
        if mode == "ok":
            return None
        if mode == "5xx":
            status = int(p.get("status", 503))
            return Fault.error(status, "ServiceUnavailableException" if status == 503 else "InternalFailure",
                               "injected outage")
        if mode == "429":
            return Fault.throttle(p.get("retry_after"))
        if mode == "stall":
            return Fault("custom", action=self._stall_action(float(p.get("seconds", 30)), bool(p.get("processed", True))))
        if mode == "reset":
            return Fault("custom", action=_reset)
        if mode == "slow":
            return Fault("custom", action=_slow_action(float(p.get("delay", 1.0)), float(p.get("trickle", 0.0))))
        raise AssertionError(mode)

    def _stall_action(self, seconds: float, processed: bool):
        def act(fake, h, rec, docs, ids, prefix):
            if processed:
                fake._accept(rec, docs, ids, [], prefix + "stall-mid-response")
                with fake._lock:
                    fake.stalled_ids.extend(i for i in ids if i)
            else:
                fake._finish(rec, prefix + "stall-mid-response (not processed)")
            body = b'{"UnprocessedTraceSegments":[]}'
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                    f"x-amzn-RequestId: fault-stall-{rec.index}\r\n\r\n").encode()
            try:
                h.wfile.write(head)
                h.wfile.flush()
            except OSError:
                pass
            fake._wait_released(seconds)
            h._close_without_answer()
        return act

    def _wait_released(self, seconds: float):
        deadline = time.monotonic() + seconds
        with self._changed:
            generation = self._release_generation
            while self._release_generation == generation and self._server is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._changed.wait(min(remaining, 0.25))

    # ---- records ----
    def _accept(self, rec, docs, ids, refused, outcome):
        super()._accept(rec, docs, ids, refused, outcome)
        refused_set = set(refused)
        with self._lock:
            self.id_counts.update(i for i in ids if i and i not in refused_set)

    def duplicate_ids(self) -> dict:
        """{segment id: times accepted} for every id accepted more than once."""
        with self._lock:
            return {i: c for i, c in self.id_counts.items() if c > 1}

    def duplicates(self) -> int:
        """Accepted documents beyond the first of each id."""
        with self._lock:
            return sum(c - 1 for c in self.id_counts.values() if c > 1)

    def distinct_ids(self) -> set:
        with self._lock:
            return set(self.id_counts)

    def stats(self) -> dict:
        with self._lock:
            outcomes = collections.Counter(r.outcome for r in self.requests)
            return {"mode": self._mode, "requests": len(self.requests), "accepted": sum(self.id_counts.values()),
                    "distinct": len(self.id_counts),
                    "duplicates": sum(c - 1 for c in self.id_counts.values() if c > 1),
                    "outcomes": dict(outcomes)}

    # ---- HTTP control ----
    def _dispatch(self, h, body: bytes):
        path = h.path.split("?", 1)[0]
        if path == self.base_path + "/_fault/mode" and h.command == "POST":
            try:
                req = json.loads(body or b"{}")
                mode = req.pop("mode")
                self.set_mode(mode, **req)
            except (ValueError, KeyError, TypeError) as e:
                h._answer(400, json.dumps({"message": f"bad mode request: {e}"}).encode())
                return
            h._answer(200, json.dumps({"mode": self.mode}).encode())
            return
        if path == self.base_path + "/_fault/stats" and h.command == "GET":
            h._answer(200, json.dumps(self.stats()).encode())
            return
        super()._dispatch(h, body)


def _reset(fake, h, rec, docs, ids, prefix):
    fake._finish(rec, prefix + "reset")
    h.close_connection = True
    try:
        # SO_LINGER on with a zero timeout: close() sends RST and discards unsent data.
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.connection.close()
    except OSError:
        pass


def _slow_action(delay: float, trickle: float):
    def act(fake, h, rec, docs, ids, prefix):
        fake._wait_released(delay)
        fake._accept(rec, docs, ids, [], prefix + "slow")
        body = b'{"UnprocessedTraceSegments":[]}'
        data = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"x-amzn-RequestId: fault-slow-{rec.index}\r\n\r\n").encode() + body
        try:
            if trickle <= 0:
                h.wfile.write(data)
            else:
                step = trickle / len(data)
                for i in range(len(data)):
                    h.wfile.write(data[i:i + 1])
                    h.wfile.flush()
                    time.sleep(step)
            h.wfile.flush()
        except OSError:
            h.close_connection = True
    return act



# --------------------------------------------------------------------------------------------
# The pipeline's accounting as /metrics shows it, and checks the test_pipeline_*.py files share

EXPORTER_METRICS = ("received", "delivered", "queued", "spooled", "dropped", "retries")
DROP_REASONS = ("queue_full", "spool_full", "expired", "refused", "permanent", "retries_exhausted", "shutdown",
                "spool_corrupt", "spool_busy")
_KEY_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def doc_ids(documents) -> list:
    """The "id" of each document string (None for one that is not a JSON object)."""
    out = []
    for d in documents:
        try:
            o = json.loads(d)
        except ValueError:
            o = None
        out.append(o.get("id") if isinstance(o, dict) else None)
    return out


def metric_series(m: dict, name: str) -> list[tuple[dict, float]]:
    """Every series of metric `name` in parsed /metrics (harness.parse_metrics) as (labels, value)."""
    out = []
    for key, value in m.items():
        km = _KEY_RE.match(key)
        if km and km.group(1) == name:
            out.append((dict(_LABEL_RE.findall(km.group(2) or "")), value))
    return out


def metric_sum(m: dict, name: str, **labels) -> float:
    return sum(v for l, v in metric_series(m, name) if all(l.get(k) == w for k, w in labels.items()))


@dataclass
class Account:
    """One exporter's counters: received = delivered + queued + spooled + sum(dropped) must hold."""
    exporter: str
    received: int
    delivered: int
    queued: int
    spooled: int
    dropped: dict  # reason -> count (only reasons with a series)
    retries: int
    present: bool  # the exporter has a xrayd_exporter_received_total series at all

    @property
    def drop_reasons(self) -> set:
        """The reasons with a non-zero count."""
        return {r for r, n in self.dropped.items() if n}

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def balanced(self) -> bool:
        return self.received == self.delivered + self.queued + self.spooled + self.dropped_total

    def idle(self) -> bool:
        return self.queued == 0 and self.spooled == 0

    def brief(self) -> str:
        drops = ",".join(f"{r}={n}" for r, n in sorted(self.dropped.items()) if n) or "0"
        return (f"{self.exporter}: received={self.received} delivered={self.delivered} queued={self.queued} "
                f"spooled={self.spooled} dropped={{{drops}}} retries={self.retries}"
                f"{'' if self.balanced() else ' NOT BALANCED'}")


def account(m: dict, exporter: str) -> Account:
    get = lambda name: int(metric_sum(m, f"xrayd_exporter_{name}", exporter=exporter))
    dropped = {l.get("reason", "?"): int(v) for l, v in metric_series(m, "xrayd_exporter_dropped_total")
               if l.get("exporter") == exporter}
    present = bool([1 for l, _ in metric_series(m, "xrayd_exporter_received_total") if l.get("exporter") == exporter])
    return Account(exporter, get("received_total"), get("delivered_total"), get("queued_segments"),
                   get("spooled_segments"), dropped, get("retries_total"), present)


def spool_errors(m: dict, exporter: Optional[str] = None) -> dict:
    """{kind: count} of xrayd_spool_errors_total (for one exporter or all), non-zero kinds only."""
    out: dict = collections.Counter()
    for l, v in metric_series(m, "xrayd_spool_errors_total"):
        if exporter is None or l.get("exporter") == exporter:
            out[l.get("kind", "?")] += int(v)
    return {k: n for k, n in out.items() if n}  # only kinds that happened


def assert_invariant(tc, m: dict, exporter: str) -> Account:
    """The exporter exists in /metrics, its counters add up, and no reason is outside the documented list."""
    a = account(m, exporter)
    tc.assertTrue(a.present, f"no xrayd_exporter_*{{exporter=\"{exporter}\"}} series in /metrics")
    tc.assertGreaterEqual(min(a.queued, a.spooled), 0, f"a negative gauge: {a.brief()}")
    tc.assertTrue(a.balanced(), f"received != delivered + queued + spooled + dropped: {a.brief()}")
    unknown = set(a.dropped) - set(DROP_REASONS)
    tc.assertFalse(unknown, f"drop reasons outside the documented list: {unknown} ({a.brief()})")
    return a


def assert_exactly_once_or_dropped(tc, backend: "FaultBackend", a: Account, sent_ids, *,
                                   allowed_duplicates: int = 0, why_duplicates: str = ""):
    """After the pipeline is idle (nothing queued or spooled): every segment the exporter received
    reached the back-end (once, but for `allowed_duplicates`, with the reason given) or is counted as
    dropped; nothing reached the back-end that was not sent."""
    tc.assertTrue(a.idle(), f"not drained: {a.brief()}")
    got = backend.distinct_ids()
    sent = set(sent_ids)
    tc.assertFalse(got - sent, f"{len(got - sent)} ids reached the back-end that nobody sent")
    tc.assertEqual(a.received, len(sent), f"xrayd received {a.received} of {len(sent)} sent ({a.brief()})")
    tc.assertEqual(len(got), a.delivered,
                   f"{len(got)} distinct segments reached the back-end, xrayd counts {a.delivered} delivered "
                   f"({a.brief()}; back-end {backend.stats()})")
    tc.assertEqual(len(sent - got), a.dropped_total,
                   f"{len(sent - got)} segments never arrived but {a.dropped_total} counted dropped ({a.brief()})")
    dups = backend.duplicates()
    tc.assertLessEqual(dups, allowed_duplicates,
                       f"{dups} duplicate deliveries, at most {allowed_duplicates} allowed ({why_duplicates or 'none expected'}); "
                       f"e.g. {list(backend.duplicate_ids().items())[:5]}")
    return dups


def wait_idle(daemon, exporter: str, timeout: float, extra=None):
    """Polls /metrics until the exporter has nothing queued or spooled and its counters add up
    (and extra(m) holds, if given); returns the last parsed metrics."""
    return daemon.wait_metrics(lambda m: account(m, exporter).idle() and account(m, exporter).balanced()
                               and (extra is None or extra(m)), timeout, interval=0.1)


def make_incompressible(doc: dict) -> dict:
    """Replaces a harness.make_segment document's "xxx…" padding with random base64 of the same length:
    the spool compresses records with zstd, so a test that must fill a queue or a disk needs data that
    does not shrink (~6 bits of entropy a byte)."""
    pad = doc.get("metadata", {}).get("default", {})
    if "pad" in pad:
        n = len(pad["pad"])
        pad["pad"] = base64.b64encode(os.urandom(n))[:n].decode()
    return doc


class RateSender:
    """Sends fresh segments over UDP at `rate` per second from a thread until stop(); ids in .ids."""

    def __init__(self, port: int, rate: float, *, size: int = 0, name: str = "pipe-e2e", rng=None,
                 incompressible: bool = False):
        """incompressible: pad with random letters instead of "xxx…" (the spool compresses records
        with zstd, so a test that must fill a disk needs data that does not shrink)."""
        import harness  # late: harness imports fake_xray, keep this module importable alone
        self._harness = harness
        self.port, self.rate, self.size, self.name = port, rate, size, name
        self.rng = rng or random.Random()
        self.incompressible = incompressible
        self.ids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rate-sender", daemon=True)

    def start(self) -> "RateSender":
        self._thread.start()
        return self

    def _run(self):
        h = self._harness
        sender = h.UdpSender(self.port)
        t0, n = time.monotonic(), 0
        try:
            while not self._stop.is_set():
                due = int((time.monotonic() - t0) * self.rate) + 1
                while n < due and not self._stop.is_set():
                    doc = h.make_segment(name=f"{self.name}-{n}", pad_to=self.size, rng=self.rng)
                    if self.incompressible:
                        make_incompressible(doc)
                    sender.send(h.datagram(doc))
                    self.ids.append(doc["id"])
                    n += 1
                time.sleep(0.005)
        finally:
            sender.close()

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(timeout=10)
        return list(self.ids)



# --------------------------------------------------------------------------------------------
# The test case the test_pipeline_*.py files share


def pipeline_test_case():
    """PipelineTestCase, built on harness.XraydTestCase (imported late: harness imports fake_xray)."""
    import harness

    class PipelineTestCase(harness.XraydTestCase):
        """A FaultBackend per test (self.fake, also self.backend) and xrayd daemons against it
        (start_xrayd(spool_dir=..., args=[...])); tearDown kills them, stops the back-end, and on
        failure prints the daemon logs and the back-end's stats."""

        def setUp(self):
            self.fake = self.backend = FaultBackend().start()
            self.daemons = []
            self._t0 = time.monotonic()
            self._dirs = []

        def tearDown(self):
            super().tearDown()
            for d in self._dirs:
                shutil.rmtree(d, ignore_errors=True)

        def temp_dir(self, prefix="xrayd-pipe-") -> str:
            d = tempfile.mkdtemp(prefix=prefix)
            self._dirs.append(d)
            return d

        def start_xrayd(self, *, spool_dir: Optional[str] = None, args=(), ready: str = "/readyz",
                        endpoint: Optional[str] = None, preexec_fn=None, **kw):
            """`preexec_fn`: run in the child before exec (e.g. limit_file_size)."""
            extra = list(kw.pop("extra_args", ()))
            if spool_dir:
                extra += ["--spool-dir", spool_dir]
            extra += list(args)
            d = harness.Xrayd(endpoint or self.backend.endpoint, extra_args=extra, **kw)
            self.daemons.append(d)
            if ready == "/readyz" and preexec_fn is None:
                return d.start()
            start_until(d, ready, preexec_fn=preexec_fn)
            deadline = time.monotonic() + 10
            while ready == "/readyz" and self.readyz(d)[0] != 200:
                if time.monotonic() > deadline or not d.alive():
                    raise RuntimeError(f"xrayd not ready: {self.readyz(d)}\n{d.log_tail()}")
                time.sleep(0.05)
            return d

        def metrics_text(self, daemon) -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{daemon.health_port}/metrics", timeout=2) as r:
                return r.read().decode()

        def readyz(self, daemon) -> tuple[int, str]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{daemon.health_port}/readyz", timeout=2) as r:
                    return r.status, r.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode("utf-8", "replace")

        def print_timing(self, what: str, seconds: float):
            print(f"  [{self.id().split('.')[-1]}: {what} {seconds:.1f} s]", file=sys.stderr)

    return PipelineTestCase


def limit_file_size(limit_bytes: int):
    """A preexec_fn: the child (xrayd) may not grow any file past `limit_bytes` (RLIMIT_FSIZE), and
    ignores SIGXFSZ (an ignored signal stays ignored across exec), so a write past the limit fails
    with EFBIG, as one on a full disk fails with ENOSPC. Needs no privilege."""
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return apply


def start_until(d, path: str, timeout: float = 10.0, preexec_fn=None):
    """Starts harness.Xrayd `d` and waits until `path` on its health port answers at all (any
    status): for a daemon that is deliberately not ready (an unusable spool)."""
    import harness
    d.udp_port, d.health_port = harness.free_ports(socket.SOCK_DGRAM, socket.SOCK_STREAM)
    cfg_path = os.path.join(d.dir, "cfg.yaml")
    with open(cfg_path, "w") as f:
        f.write("Version: 2\n")
    args = [harness.XRAYD_BIN, "-o", "-c", cfg_path, "-n", d.region, "-b", f"127.0.0.1:{d.udp_port}",
            "-t", f"127.0.0.1:{d.udp_port}", "-m", str(d.buffer_mb), "-l", d.log_level,
            "--endpoint", d.endpoint, "--health-address", f"127.0.0.1:{d.health_port}"]
    if d.request_timeout is not None:
        args += ["--request-timeout", str(d.request_timeout)]
    args += d.extra_args
    d.args = args
    with open(d.log_path, "ab") as log:
        log.write(f"=== {' '.join(args)}\n".encode())
        log.flush()
        d.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  cwd=d.dir, env=harness.clean_env(d.extra_env, home=d.dir), preexec_fn=preexec_fn)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and d.proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{d.health_port}{path}", timeout=1):
                return d
        except urllib.error.HTTPError:
            return d
        except (OSError, urllib.error.URLError):
            time.sleep(0.05)
    raise RuntimeError(f"xrayd did not answer {path} (exit {d.proc.poll()}):\n{d.log_tail()}")


def main(argv=None):
    p = argparse.ArgumentParser(description="Serve a fault-injecting X-Ray PutTraceSegments API until interrupted.")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: kernel-chosen)")
    p.add_argument("--mode", default="ok", choices=MODES)
    args = p.parse_args(argv)
    backend = FaultBackend()
    backend.start(port=args.port)
    backend.set_mode(args.mode)
    print(f"FaultBackend on {backend.endpoint} mode {args.mode}; credentials {backend.access_key} / "
          f"region {backend.region}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        backend.stop()
        print(json.dumps(backend.stats()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
