"""Every HTTP listener of xrayd against a hostile client on loopback: the X-Ray API of `xrayd serve`,
the TCP sampling proxy and the health port (all three served by http::Server).

For each listener: slow senders (slowloris) and an idle-connection flood while normal requests keep
answering within a bound; an oversized request line and headers; a chunked body over the limit and
a body without a length; a gzip bomb, refused without the process's peak RSS growing; Content-Length
with Transfer-Encoding and two different Content-Lengths, refused with the connection closed; the
connection cap. Then shutdown: with a stalled upstream and a sampling request in flight, SIGTERM
exits within the grace period. Every loop is bounded in count and time; loopback only.

    python3 tests/e2e/test_hostile_http.py --xrayd build/xrayd [-v] [HostileHttpTest.test_gzip_bomb]
"""
from __future__ import annotations

import gzip
import os
import selectors
import socket
import threading
import time
import unittest
import urllib.request
import zlib

import harness
from serve_harness import XraydServe

# Peak-RSS bounds are for a normal build. Under a sanitizer (scripts/ci-sanitizers.sh sets XRAYD_SANITIZER)
# shadow memory and ASan's quarantine of freed blocks inflate RSS, so the bounds are 4x; still far below the
# 256 MiB a whole inflation or a whole body would cost.
RSS_SCALE = 4 if os.environ.get("XRAYD_SANITIZER") else 1
if RSS_SCALE != 1:
    print(f"peak-RSS bounds x{RSS_SCALE}: built with {os.environ['XRAYD_SANITIZER']}", flush=True)

MIB = 1024 * 1024
# The limits each listener is built with (http/server_reader.h defaults, narrowed per listener).
BODY_LIMIT = {"api": 8 * MIB, "tcp_proxy": 1 * MIB, "health": 4 * 1024}
HEADER_TIMEOUT_S = 10
IDLE_TIMEOUT_S = 5
DEFAULT_MAX_CONNECTIONS = 1024


class Listener:
    def __init__(self, name: str, port: int):
        self.name, self.port = name, port

    def normal_request(self) -> bytes:
        if self.name == "health":
            return b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        return (b"POST /GetSamplingRules HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")

    def head(self, extra: bytes = b"") -> bytes:
        """A request head for this listener's usual path, without the final CRLF."""
        path = b"/healthz" if self.name == "health" else b"/GetSamplingRules"
        return b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + extra


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_closed(s: socket.socket, timeout: float = 10.0, limit: int = 1 << 20) -> tuple[bytes, bool]:
    """Everything the server sends until it closes; (bytes, closed). closed is False on timeout."""
    s.settimeout(timeout)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while len(out) < limit and time.monotonic() < deadline:
            b = s.recv(65536)
            if not b:
                return out, True
            out += b
    except ConnectionResetError:
        return out, True
    except socket.timeout:
        pass
    return out, False


def exchange(port: int, data: bytes, timeout: float = 10.0) -> tuple[bytes, bool]:
    with connect(port, timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_closed(s, timeout)


def send_watching(s: socket.socket, chunks, max_seconds: float = 20.0) -> int:
    """Sends chunks until the server answers, closes, or time runs out; returns bytes sent."""
    sent = 0
    deadline = time.monotonic() + max_seconds
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ)
    try:
        for chunk in chunks:
            if sel.select(timeout=0) or time.monotonic() > deadline:
                break  # an answer (or a close) is waiting
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                break
            sent += len(chunk)
    finally:
        sel.close()
    return sent


def status(response: bytes) -> int:
    if not response.startswith(b"HTTP/1.1 "):
        return 0
    return int(response[9:12])


def statuses(response: bytes) -> list[int]:
    return [int(response[i + 9:i + 12]) for i in range(len(response)) if response.startswith(b"HTTP/1.1 ", i)]


def vm_hwm_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class HostileHttpTest(unittest.TestCase):
    """A fresh `xrayd serve` per test with its health port on; the three listeners in self.listeners."""

    def setUp(self):
        self._t0 = time.monotonic()
        self.health_port = harness.free_tcp_port()
        self.serve = self.start_serve()
        self.listeners = [Listener("api", self.serve.api_port), Listener("tcp_proxy", self.serve.tcp_port),
                          Listener("health", self.health_port)]
        # The serve harness waits for the API; the health port is bound just after it.
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def start_serve(self, *extra) -> XraydServe:
        serve = XraydServe(extra_args=["--health-address", f"127.0.0.1:{self.health_port}", *extra]).start()
        self.addCleanup(serve.cleanup)
        return serve

    def tearDown(self):
        if self.serve.alive() is False:
            print(f"\n--- xrayd serve log ---\n{self.serve.log_tail(60)}")
        print(f"  [{self.id().split('.')[-1]}: {time.monotonic() - self._t0:.1f} s]")

    def refused(self, listener: str, reason: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/metrics", timeout=5) as r:
            m = harness.Metrics(harness.parse_metrics(r.read().decode()))
        return m[f'xrayd_http_refused_total{{listener="{listener}",reason="{reason}"}}']

    def assert_normal_request_answers(self, listener: Listener, bound_s: float = 2.0) -> float:
        t0 = time.monotonic()
        response, closed = exchange(listener.port, listener.normal_request(), timeout=bound_s + 5)
        took = time.monotonic() - t0
        self.assertEqual(status(response), 200, f"{listener.name}: {response[:200]!r}")
        self.assertLess(took, bound_s, f"{listener.name}: a normal request took {took:.2f} s")
        return took

    # ----------------------------------------------------------------------------------------

    def test_slowloris_and_idle_flood_do_not_starve_normal_requests(self):
        slow, idle = [], []
        for lst in self.listeners:
            for _ in range(6):
                s = connect(lst.port)
                s.sendall(lst.head())
                slow.append((lst, s))
            for _ in range(500):
                idle.append((lst, connect(lst.port)))
        opened = time.monotonic()
        received = {id(s): b"" for _, s in slow}
        stop = threading.Event()

        def trickle():  # one header byte per slow client every 0.5 s, until closed or 15 s
            while not stop.is_set() and time.monotonic() - opened < HEADER_TIMEOUT_S + 5:
                for _, s in slow:
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
                time.sleep(0.5)

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        try:
            latencies = {lst.name: [] for lst in self.listeners}
            while time.monotonic() - opened < 3.0:
                for lst in self.listeners:
                    latencies[lst.name].append(self.assert_normal_request_answers(lst, bound_s=2.0))
            for name, lat in latencies.items():
                self.assertGreaterEqual(len(lat), 3, name)
                print(f"  {name}: {len(lat)} requests under the flood, slowest {max(lat) * 1000:.0f} ms")
            # The slow senders get 408 once the header deadline passes; the idle ones are closed.
            sel = selectors.DefaultSelector()
            for _, s in slow + idle:
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
            open_socks = {s for _, s in slow + idle}
            deadline = opened + HEADER_TIMEOUT_S + 6
            while open_socks and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.5):
                    s = key.fileobj
                    try:
                        b = s.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except ConnectionResetError:
                        b = b""
                    if id(s) in received and b:
                        received[id(s)] += b
                        continue
                    if not b:
                        sel.unregister(s)
                        open_socks.discard(s)
            sel.close()
            self.assertEqual(len(open_socks), 0, f"{len(open_socks)} connections still open "
                                                 f"{time.monotonic() - opened:.0f} s after opening")
            for lst, s in slow:
                self.assertEqual(status(received[id(s)]), 408, f"{lst.name}: {received[id(s)][:100]!r}")
            for lst in self.listeners:
                self.assertGreaterEqual(self.refused(lst.name, "header_timeout"), 6, lst.name)
                self.assert_normal_request_answers(lst)
        finally:
            stop.set()
            t.join(timeout=5)
            for _, s in slow + idle:
                s.close()

    def test_huge_request_line_and_headers(self):
        for lst in self.listeners:
            cases = {
                "request line": b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n",
                "header count": lst.head(b"".join(b"X-H%d: v\r\n" % i for i in range(200))) + b"\r\n",
                "one header": lst.head(b"X-Big: " + b"v" * 40_000 + b"\r\n") + b"\r\n",
            }
            for what, data in cases.items():
                with self.subTest(listener=lst.name, case=what):
                    response, closed = exchange(lst.port, data)
                    self.assertEqual(statuses(response), [431], response[:200])
                    self.assertIn(b"Connection: close", response)
                    self.assertTrue(closed, "the connection must be closed after a refusal")
            self.assertGreaterEqual(self.refused(lst.name, "header_too_large"), 2)
            self.assertGreaterEqual(self.refused(lst.name, "too_many_headers"), 1)
            self.assert_normal_request_answers(lst)

    def test_chunked_body_over_the_limit(self):
        for lst in self.listeners:
            with self.subTest(listener=lst.name):
                hwm0 = vm_hwm_kb(self.serve.proc.pid)
                limit = BODY_LIMIT[lst.name]
                piece = b"x" * 65536
                chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
                with connect(lst.port) as s:
                    s.sendall(lst.head(b"Transfer-Encoding: chunked\r\n") + b"\r\n")
                    sent = send_watching(s, (chunk for _ in range(limit // len(piece) + 64)))
                    response, closed = read_until_closed(s)
                self.assertEqual(statuses(response), [413], response[:200])
                self.assertTrue(closed)
                self.assertLess(sent, limit + 4 * MIB, "the server must stop reading at the limit")
                self.assertGreaterEqual(self.refused(lst.name, "body_too_large"), 1)
                grew_mb = (vm_hwm_kb(self.serve.proc.pid) - hwm0) / 1024
                self.assertLess(grew_mb, 2 * limit / MIB + 16 * RSS_SCALE, f"peak RSS grew {grew_mb:.0f} MB")
                self.assert_normal_request_answers(lst)

    def test_body_without_a_length_is_no_body(self):
        """RFC 9112 §6.3: a request with neither Content-Length nor Transfer-Encoding has no body, so
        what follows is parsed as the next request, and 16 MiB without a line end is refused at the
        header limit instead of being read whole (the old server read it until the client closed)."""
        for lst in self.listeners:
            with self.subTest(listener=lst.name):
                hwm0 = vm_hwm_kb(self.serve.proc.pid)
                with connect(lst.port) as s:
                    s.sendall(lst.head() + b"\r\n" + b"y" * 65536)  # more than the header limit at once
                    sent = 65536 + send_watching(s, (b"y" * 65536 for _ in range(255)))
                    response, closed = read_until_closed(s)
                codes = statuses(response)
                self.assertEqual(codes[-1:], [431], response[:300])
                self.assertEqual(len(codes), 2, response[:300])  # the body-less request, then the refusal
                self.assertTrue(closed)
                self.assertLess(sent, 16 * MIB)
                grew_mb = (vm_hwm_kb(self.serve.proc.pid) - hwm0) / 1024
                self.assertLess(grew_mb, 16 * RSS_SCALE, f"peak RSS grew {grew_mb:.0f} MB")

    def test_gzip_bomb(self):
        z = zlib.compressobj(9, zlib.DEFLATED, 31)
        block = b"\0" * MIB
        bomb = b"".join(z.compress(block) for _ in range(256)) + z.flush()  # 256 MiB → ~250 KiB
        for lst in self.listeners:
            with self.subTest(listener=lst.name):
                hwm0 = vm_hwm_kb(self.serve.proc.pid)
                data = lst.head(b"Content-Encoding: gzip\r\nContent-Length: %d\r\n" % len(bomb)) + b"\r\n" + bomb
                with connect(lst.port) as s:
                    send_watching(s, (data[i:i + 65536] for i in range(0, len(data), 65536)))
                    response, closed = read_until_closed(s)
                self.assertEqual(statuses(response), [413], response[:200])
                self.assertTrue(closed)
                reason = "body_too_large" if len(bomb) > BODY_LIMIT[lst.name] else "inflated_too_large"
                self.assertGreaterEqual(self.refused(lst.name, reason), 1)
                grew_mb = (vm_hwm_kb(self.serve.proc.pid) - hwm0) / 1024
                self.assertLess(grew_mb, 24 * RSS_SCALE, f"peak RSS grew {grew_mb:.0f} MB on a 256 MiB gzip bomb")
        # A reasonable compressed body is inflated and served.
        body = gzip.compress(b"{}")
        response, _ = exchange(self.serve.api_port, b"POST /GetSamplingRules HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Encoding: gzip\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                               % len(body) + body)
        self.assertEqual(status(response), 200, response[:300])
        self.assertIn(b"SamplingRuleRecords", response)

    def test_ambiguous_framing_is_refused_and_closed(self):
        smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        for lst in self.listeners:
            cases = {
                "CL+TE": (lst.head(b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % (5 + len(smuggled)))
                          + b"\r\n0\r\n\r\n" + smuggled, 400, "bad_framing"),
                "TE+CL": (lst.head(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n") + b"\r\n0\r\n\r\n"
                          + smuggled, 400, "bad_framing"),
                "two lengths": (lst.head(b"Content-Length: 2\r\nContent-Length: 40\r\n") + b"\r\n{}" + smuggled,
                                400, "bad_framing"),
                "unknown coding": (lst.head(b"Transfer-Encoding: gzip, chunked\r\n") + b"\r\n0\r\n\r\n" + smuggled,
                                   501, "transfer_coding"),
            }
            for what, (data, code, reason) in cases.items():
                with self.subTest(listener=lst.name, case=what):
                    before = self.refused(lst.name, reason)
                    response, closed = exchange(lst.port, data)
                    self.assertEqual(statuses(response), [code], f"exactly one answer: {response[:300]!r}")
                    self.assertIn(b"Connection: close", response)
                    self.assertTrue(closed)
                    self.assertEqual(self.refused(lst.name, reason), before + 1)

    def test_connection_cap(self):
        """The API's cap from --api-max-connections; the proxy and health port at their default."""
        self.serve.cleanup()
        self.health_port = harness.free_tcp_port()
        self.serve = self.start_serve("--api-max-connections", "20")
        caps = [(Listener("api", self.serve.api_port), 20),
                (Listener("tcp_proxy", self.serve.tcp_port), DEFAULT_MAX_CONNECTIONS),
                (Listener("health", self.health_port), DEFAULT_MAX_CONNECTIONS)]
        for lst, cap in caps:
            with self.subTest(listener=lst.name):
                held = []
                try:
                    t0 = time.monotonic()
                    held = [connect(lst.port) for _ in range(cap)]
                    # Each accepted connection is counted once the I/O thread has taken it.
                    time.sleep(0.3)
                    self.assertLess(time.monotonic() - t0, IDLE_TIMEOUT_S - 1, "too slow to open the connections")
                    response, closed = exchange(lst.port, lst.normal_request())
                    self.assertEqual(status(response), 503, response[:200])
                    self.assertIn(b"Connection: close", response)
                    self.assertIn(b"Retry-After", response)
                    self.assertTrue(closed)
                finally:
                    for s in held:
                        s.close()
                deadline = time.monotonic() + 5
                while True:  # the server notices the closes on its next reads
                    response, _ = exchange(lst.port, lst.normal_request())
                    if status(response) == 200 or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
                self.assertEqual(status(response), 200, response[:200])
                self.assertGreaterEqual(self.refused(lst.name, "connection_limit"), 1)  # (health: once below its cap)


class StalledUpstream:
    """Accepts connections and reads requests, never answers: an X-Ray endpoint that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = threading.Event()
        self.conns = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c):
        try:
            while c.recv(65536):
                self.requests.set()
        except OSError:
            pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class ProxyShutdownTest(unittest.TestCase):
    def test_sigterm_with_a_stalled_upstream_and_a_request_in_flight(self):
        upstream = StalledUpstream()
        self.addCleanup(upstream.close)
        grace_s = 5  # Xrayd.ShutdownGraceSeconds default; the upstream timeout stays at 30 s
        daemon = harness.Xrayd(upstream.url, config={"ShutdownGraceSeconds": grace_s}).start()
        self.addCleanup(daemon.cleanup)
        answer = {}

        def call():
            answer["response"] = exchange(daemon.udp_port, b"POST /GetSamplingRules HTTP/1.1\r\nHost: x\r\n"
                                          b"Content-Length: 2\r\nConnection: close\r\n\r\n{}", timeout=40)

        t = threading.Thread(target=call, daemon=True)
        t.start()
        self.assertTrue(upstream.requests.wait(10), "the sampling call never reached the upstream")
        t0 = time.monotonic()
        code = daemon.terminate(timeout=30)
        took = time.monotonic() - t0
        self.assertEqual(code, 0, daemon.log_tail())
        self.assertLess(took, grace_s, f"SIGTERM to exit took {took:.1f} s:\n{daemon.log_tail()}")
        t.join(timeout=5)
        response, _ = answer.get("response", (b"", False))
        self.assertIn(status(response), (0, 502), response[:200])  # aborted upstream call → 502, or closed


if __name__ == "__main__":
    harness.main()
