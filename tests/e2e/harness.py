"""Shared plumbing for xrayd's end-to-end tests: find the binary, run xrayd on free loopback ports
against a FakeXRay, read its /metrics, build and send raw UDP segment documents.

Every test file is a standalone unittest program:
    python3 tests/e2e/test_x.py --xrayd build/xrayd [unittest args, e.g. -v or a test name]
or with XRAYD_BIN=build/xrayd in the environment. main() below parses --xrayd and runs unittest,
exiting non-zero on failure.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from typing import Optional

import fake_xray

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
XRAYD_BIN: Optional[str] = None

SEGMENT_HEADER = b'{"format": "json", "version": 1}\n'


# --------------------------------------------------------------------------------------------
# Entry point


def main():
    """Strips --xrayd PATH from argv, resolves the binary, runs unittest.main()."""
    global XRAYD_BIN
    argv = [sys.argv[0]]
    args = sys.argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--xrayd" and i + 1 < len(args):
            XRAYD_BIN = args[i + 1]
            i += 2
            continue
        if a.startswith("--xrayd="):
            XRAYD_BIN = a.split("=", 1)[1]
        else:
            argv.append(a)
        i += 1
    XRAYD_BIN = XRAYD_BIN or os.environ.get("XRAYD_BIN") or os.path.join(REPO, "build", "xrayd")
    XRAYD_BIN = os.path.abspath(XRAYD_BIN)
    if not (os.path.isfile(XRAYD_BIN) and os.access(XRAYD_BIN, os.X_OK)):
        print(f"FAIL: xrayd binary not found or not executable: {XRAYD_BIN} "
              f"(pass --xrayd PATH or set XRAYD_BIN)", file=sys.stderr)
        sys.exit(2)
    unittest.main(argv=argv, verbosity=2)


# --------------------------------------------------------------------------------------------
# Ports and UDP


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(*kinds) -> list[int]:
    """Distinct free loopback port numbers, one per socket kind. Every socket stays open until all
    are chosen, so the kernel cannot hand out the same number twice; a number chosen for UDP is
    also kept away from the TCP ones, since xrayd binds its UDP address for TCP too (-t)."""
    sockets, ports = [], []
    try:
        while len(ports) < len(kinds):
            s = socket.socket(socket.AF_INET, kinds[len(ports)])
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if kinds[len(ports)] == socket.SOCK_DGRAM:
                # The TCP port of the same number must be bindable too (as xrayd binds it, with
                # SO_REUSEADDR): after a test opens thousands of client connections, it can be the
                # local end of one, and the sampling proxy would then fail to bind (logged, not fatal).
                t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sockets.append(t)
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            if port not in ports:
                ports.append(port)
        return ports
    finally:
        for s in sockets:
            s.close()


class UdpSender:
    """Sends datagrams to xrayd, optionally paced so the loopback queue never overflows."""

    def __init__(self, port: int):
        self.addr = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.sent = 0

    def send(self, payload: bytes):
        for attempt in range(100):
            try:
                self.sock.sendto(payload, self.addr)
                self.sent += 1
                return
            except BlockingIOError:
                time.sleep(0.001)
            except OSError as e:  # ENOBUFS under a flood: back off and retry
                if e.errno not in (105, 11):
                    raise
                time.sleep(0.001)
        raise RuntimeError("could not send a datagram after 100 tries")

    def send_all(self, payloads, pace_every: int = 0, pause: float = 0.0):
        for n, p in enumerate(payloads, 1):
            self.send(p)
            if pace_every and n % pace_every == 0:
                time.sleep(pause)

    def close(self):
        self.sock.close()


# --------------------------------------------------------------------------------------------
# Segment documents


def new_trace_id(rng=random) -> str:
    return "1-%08x-%024x" % (int(time.time()), rng.getrandbits(96))


def new_id(rng=random) -> str:
    return "%016x" % rng.getrandbits(64)


def make_segment(name="e2e", pad_to: int = 0, rng=random, **extra) -> dict:
    now = time.time()
    seg = {"trace_id": new_trace_id(rng), "id": new_id(rng), "name": name,
           "start_time": round(now - 0.25, 6), "end_time": round(now, 6)}
    seg.update(extra)
    if pad_to:
        body = json.dumps(seg, separators=(",", ":"))
        need = pad_to - len(body) - len(',"metadata":{"default":{"pad":""}}')
        if need > 0:
            seg["metadata"] = {"default": {"pad": "x" * need}}
    return seg


def datagram(doc, header: bytes = SEGMENT_HEADER) -> bytes:
    body = doc if isinstance(doc, (bytes, str)) else json.dumps(doc, separators=(",", ":"))
    return header + (body.encode() if isinstance(body, str) else body)


# --------------------------------------------------------------------------------------------
# Metrics


_METRIC_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)$")


def parse_metrics(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC_RE.match(line.strip())
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


class Metrics(dict):
    """Parsed /metrics; m["name"] or m["name{label=\"v\"}"], missing → 0, plus sums over labels."""

    def __missing__(self, key):
        return 0.0

    def total(self, name: str) -> float:
        return sum(v for k, v in self.items() if k == name or k.startswith(name + "{"))

    @property
    def received(self):
        return self["xrayd_segments_received_total"]

    @property
    def sent(self):
        return self["xrayd_segments_sent_total"]

    @property
    def spilled(self):
        return self["xrayd_segments_spilled_total"]

    @property
    def rejected(self):
        return self.total("xrayd_segments_rejected_total")

    @property
    def failed(self):
        return self.total("xrayd_segments_failed_total")

    @property
    def retries(self):
        return self["xrayd_export_retries_total"]

    def rejected_by(self, reason):
        return self[f'xrayd_segments_rejected_total{{reason="{reason}"}}']

    def failed_by(self, reason):
        return self[f'xrayd_segments_failed_total{{reason="{reason}"}}']

    def balanced(self) -> bool:
        return self.received == self.sent + self.spilled + self.rejected + self.failed

    def brief(self) -> str:
        keys = ["xrayd_segments_received_total", "xrayd_segments_sent_total", "xrayd_segments_spilled_total",
                "xrayd_export_retries_total", "xrayd_buffer_bytes", "xrayd_buffer_segments", "xrayd_batches_in_flight"]
        parts = [f"{k.replace('xrayd_', '')}={int(self[k])}" for k in keys]
        parts += [f"{k.replace('xrayd_segments_', '')}={int(v)}" for k, v in sorted(self.items())
                  if (k.startswith("xrayd_segments_rejected_total{") or k.startswith("xrayd_segments_failed_total{")
                      or k.startswith("xrayd_export_requests_total{")) and v]
        return " ".join(parts)


# --------------------------------------------------------------------------------------------
# The daemon


def clean_env(extra: Optional[dict] = None, home: Optional[str] = None) -> dict:
    """The environment for xrayd: test credentials, no proxies, no region, no ~/.aws."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith("AWS_") and k.lower() not in
           ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy")}
    env.update({
        "AWS_ACCESS_KEY_ID": fake_xray.TEST_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": fake_xray.TEST_SECRET_ACCESS_KEY,
        "AWS_SESSION_TOKEN": fake_xray.TEST_SESSION_TOKEN,
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    if home:
        env["HOME"] = home
        env["AWS_CONFIG_FILE"] = os.path.join(home, "no-aws-config")
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(home, "no-aws-credentials")
    if extra:
        env.update(extra)
    return env


class XraydProcess:
    """Stopping an xrayd child process (daemon or serve): subclasses set self.proc, self.returncode
    and provide log_tail()."""

    proc: Optional[subprocess.Popen] = None
    returncode: Optional[int] = None

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait up to timeout; returns the exit code (kills and raises on timeout)."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.__class__.__name__} did not exit within {timeout} s of SIGTERM:\n{self.log_tail()}")
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            self.returncode = self.proc.returncode



class Xrayd(XraydProcess):
    """One xrayd process on free loopback ports, sending to `endpoint`.

    Logs go to a file in its temporary directory; log_tail() shows them when a test fails."""

    def __init__(self, endpoint: str, *, buffer_mb: int = 16, request_timeout: Optional[float] = None,
                 config: Optional[dict] = None, extra_args=(), log_level: str = "info",
                 region: str = fake_xray.TEST_REGION, env: Optional[dict] = None):
        self.endpoint = endpoint
        self.buffer_mb = buffer_mb
        self.request_timeout = request_timeout
        self.config = config or {}
        self.extra_args = list(extra_args)
        self.log_level = log_level
        self.region = region
        self.extra_env = env or {}
        self.dir = tempfile.mkdtemp(prefix="xrayd-e2e-")
        self.log_path = os.path.join(self.dir, "xrayd.log")
        self.proc: Optional[subprocess.Popen] = None
        self.udp_port = self.health_port = 0
        self.returncode: Optional[int] = None

    # -- lifecycle --
    def start(self, ready_timeout: float = 10.0) -> "Xrayd":
        cfg_path = os.path.join(self.dir, "cfg.yaml")
        with open(cfg_path, "w") as f:
            f.write("Version: 2\n")
            if self.config:
                f.write("Xrayd:\n")
                for k, v in self.config.items():
                    f.write(f"  {k}: {v}\n")
        last_error = ""
        for attempt in range(3):  # a freed port can be taken again before xrayd binds it
            self.udp_port, self.health_port = free_ports(socket.SOCK_DGRAM, socket.SOCK_STREAM)
            args = [XRAYD_BIN, "-o", "-c", cfg_path, "-n", self.region,
                    "-b", f"127.0.0.1:{self.udp_port}", "-t", f"127.0.0.1:{self.udp_port}",
                    "-m", str(self.buffer_mb), "-l", self.log_level,
                    "--endpoint", self.endpoint, "--health-address", f"127.0.0.1:{self.health_port}"]
            if self.request_timeout is not None:
                args += ["--request-timeout", str(self.request_timeout)]
            args += self.extra_args
            self.args = args
            log = open(self.log_path, "ab")
            log.write(f"=== {' '.join(args)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.dir, env=clean_env(self.extra_env, home=self.dir))
            log.close()
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=1) as r:
                        if r.status == 200:
                            return self
                except (OSError, urllib.error.URLError):
                    pass
                time.sleep(0.05)
            last_error = f"exit code {self.proc.poll()}" if self.proc.poll() is not None else "not ready in time"
            self.kill()
        raise RuntimeError(f"xrayd did not start ({last_error}):\n{self.log_tail()}")

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- observation --
    def metrics(self, timeout: float = 2.0) -> Metrics:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/metrics", timeout=timeout) as r:
            return Metrics(parse_metrics(r.read().decode()))

    def wait_metrics(self, predicate, timeout: float, interval: float = 0.05) -> Metrics:
        """Polls /metrics until predicate(m) holds; returns the last Metrics (check it yourself)."""
        deadline = time.monotonic() + timeout
        m = self.metrics()
        while not predicate(m) and time.monotonic() < deadline:
            time.sleep(interval)
            m = self.metrics()
        return m

    def wait_drained(self, timeout: float) -> Metrics:
        """Waits until nothing is buffered or in flight and the counters add up."""
        return self.wait_metrics(lambda m: m["xrayd_buffer_segments"] == 0 and m["xrayd_batches_in_flight"] == 0
                                 and m.balanced(), timeout)

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_text().splitlines()
        return "\n".join("    | " + l for l in text[-lines:])

    def rss_kb(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0


class XraydTestCase(unittest.TestCase):
    """Starts a FakeXRay per test; start_xrayd() starts a daemon against it. Both are always stopped,
    and on failure the daemon's log tail and the fake's summary are printed."""

    def setUp(self):
        self.fake = fake_xray.FakeXRay().start()
        self.daemons: list[Xrayd] = []
        self._t0 = time.monotonic()

    def start_xrayd(self, **kw) -> Xrayd:
        d = Xrayd(self.fake.endpoint, **kw)
        self.daemons.append(d)
        return d.start()

    def tearDown(self):
        failed = self._outcome_failed()
        for d in self.daemons:
            if failed:
                print(f"\n--- xrayd log ({d.log_path}) ---\n{d.log_tail(60)}", file=sys.stderr)
            d.kill()
        self.fake.stop()
        if failed:
            print(f"--- fake X-Ray: {self.fake.summary()}", file=sys.stderr)
            for f in (self.fake.signature_failures + self.fake.protocol_violations)[:5]:
                print("    " + f, file=sys.stderr)
        for d in self.daemons:
            d.cleanup()
        print(f"  [{self.id().split('.')[-1]}: {time.monotonic() - self._t0:.1f} s]", file=sys.stderr)

    def _outcome_failed(self) -> bool:
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        result = getattr(outcome, "result", None)
        if result is not None:  # Python 3.11+
            return any(t is self for t, _ in result.failures + result.errors)
        return any(err for _, err in getattr(outcome, "errors", []))

    # -- common assertions --
    def assert_all_signed(self):
        reqs = self.fake.trace_requests()
        self.assertTrue(reqs, "xrayd sent no PutTraceSegments request")
        self.assertEqual(self.fake.signature_failures, [], "SigV4 verification failed")
        self.assertTrue(all(r.signature_ok for r in reqs))

    def assert_protocol_clean(self):
        self.assertEqual(self.fake.protocol_violations, [], "PutTraceSegments contract violated")
        self.assertEqual([f"{r.method} {r.path}" for r in self.fake.other_requests], [],
                         "requests to something other than POST /TraceSegments")


# --------------------------------------------------------------------------------------------
# SDK runs: what the SDK sent vs what reached the fake X-Ray


def split_datagram(dgram: str) -> tuple[str, str]:
    header, sep, body = dgram.partition("\n")
    if not sep:
        raise AssertionError(f"SDK datagram without a header line: {dgram[:120]!r}")
    return header, body


def assert_sdk_documents_delivered(tc: "XraydTestCase", daemon: Xrayd, datagrams: list, timeout: float = 20.0):
    """Every document the SDK sent reached the fake X-Ray byte for byte (so also the same ids,
    trace ids and content), exactly once, in signed, well-formed requests, and xrayd's counters
    agree."""
    import collections

    tc.assertTrue(datagrams, "the SDK sent nothing")
    expected = []
    for d in datagrams:
        header, body = split_datagram(d)
        tc.assertEqual(json.loads(header), {"format": "json", "version": 1}, f"SDK header {header!r}")
        expected.append(body)
    n = len(expected)
    tc.fake.wait_for(lambda f: len(f.accepted_documents()) >= n, timeout)
    m = daemon.wait_metrics(lambda m: m.sent >= n and m["xrayd_buffer_segments"] == 0, 5)
    got = tc.fake.accepted_documents()

    want_c, got_c = collections.Counter(expected), collections.Counter(got)
    if want_c != got_c:
        by_id = {}
        for g in got:
            by_id.setdefault(json.loads(g).get("id"), []).append(g)
        problems = []
        for e in (want_c - got_c):
            eid = json.loads(e).get("id")
            if eid not in by_id:
                problems.append(f"missing: {e[:160]}")
            else:
                problems.append(f"altered: sent {e[:300]}\n           got  {by_id[eid][0][:300]}")
        for g in (got_c - want_c):
            if json.loads(g).get("id") not in {json.loads(e).get("id") for e in expected}:
                problems.append(f"unexpected: {g[:160]}")
            elif got_c[g] > want_c.get(g, 0) and g in want_c:
                problems.append(f"duplicated: {g[:160]}")
        tc.fail(f"{len(problems)} document problems ({n} sent by the SDK, {len(got)} reached X-Ray):\n  " +
                "\n  ".join(problems[:20]) + f"\n  metrics: {m.brief()}")
    # Same JSON too (implied by byte equality; spelled out for the reader).
    tc.assertEqual(sorted(json.dumps(json.loads(x), sort_keys=True) for x in got),
                   sorted(json.dumps(json.loads(x), sort_keys=True) for x in expected))

    tc.assert_all_signed()
    tc.assert_protocol_clean()
    reqs = tc.fake.trace_requests()
    tc.assertGreaterEqual(len(reqs), (n + 49) // 50)
    tc.assertTrue(all(1 <= len(r.documents) <= 50 for r in reqs))
    tc.assertEqual(m.received, n, m.brief())
    tc.assertEqual(m.sent, n, m.brief())
    tc.assertEqual((m.rejected, m.spilled, m.failed, m.retries), (0, 0, 0, 0), m.brief())
    return [json.loads(b) for b in expected]
