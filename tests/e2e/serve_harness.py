"""Plumbing for the `xrayd serve` contract tests (test_serve_*.py): run `xrayd serve` on free loopback
ports with a fresh data directory, build segment documents, and run real API clients against it.

    python3 tests/e2e/test_serve_awscli.py --xrayd build/xrayd [-v] [TestClass.test_name]

Nothing here talks to AWS: every client gets --endpoint-url http://127.0.0.1:PORT, dummy credentials
and no config files, so a stray ~/.aws or AWS_* variable cannot change what is tested.
"""

from __future__ import annotations

import json
import os
import random
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

import harness

DUMMY_ACCESS_KEY_ID = "AKIDXRAYDSERVETEST00"
DUMMY_SECRET_ACCESS_KEY = "xrayd/serve/contract/test/secret/key/0000"
REGION = "us-east-1"


# --------------------------------------------------------------------------------------------
# Known xrayd bugs


def known_bug(description: str):
    """Marks a test that pins down a known xrayd bug (see the test's docstring): it is expected to
    fail until the bug is fixed. Once it passes, unittest reports an *unexpected success*, which
    fails the run: then delete the decorator, and the test guards the fix."""

    def wrap(fn):
        fn.__known_bug__ = description
        if os.environ.get("XRAYD_E2E_KNOWN_BUGS") == "fail":  # show how they fail
            return fn
        return unittest.expectedFailure(fn)

    return wrap


# --------------------------------------------------------------------------------------------
# Documents


def now() -> float:
    return time.time()


def trace_id(epoch: Optional[float] = None, rng=random) -> str:
    return "1-%08x-%024x" % (int(now() if epoch is None else epoch), rng.getrandbits(96))


def new_id(rng=random) -> str:
    return "%016x" % rng.getrandbits(64)


def segment(tid: str, name: str = "svc", start: Optional[float] = None, duration: float = 0.25,
            seg_id: Optional[str] = None, in_progress: bool = False, **extra) -> dict:
    """A segment document; in_progress=True leaves out end_time as X-Ray wants."""
    start = round(now() - 1.0 if start is None else start, 6)
    doc = {"trace_id": tid, "id": seg_id or new_id(), "name": name, "start_time": start}
    if in_progress:
        doc["in_progress"] = True
    else:
        doc["end_time"] = round(start + duration, 6)
    doc.update(extra)
    return doc


def subsegment(tid: str, parent_id: str, name: str = "sub", start: Optional[float] = None,
               duration: float = 0.1, sub_id: Optional[str] = None, in_progress: bool = False, **extra) -> dict:
    """An independent (streamed) subsegment document: type, trace_id and parent_id set."""
    doc = segment(tid, name, start, duration, sub_id, in_progress, **extra)
    doc["type"] = "subsegment"
    doc["parent_id"] = parent_id
    return doc


def dumps(doc) -> str:
    return doc if isinstance(doc, str) else json.dumps(doc, separators=(",", ":"))


def send_udp(port: int, docs, header: bytes = harness.SEGMENT_HEADER):
    """Sends each document as one datagram (header line + JSON), as the SDKs do."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for d in docs:
            s.sendto(header + dumps(d).encode(), ("127.0.0.1", port))
            time.sleep(0.001)


def walk(doc: dict, parent: Optional[str] = None, depth: int = 0):
    """Yields (node, parent id) for a document and every subsegment nested in it."""
    yield doc, parent
    if depth < 64:
        for s in doc.get("subsegments") or []:
            yield from walk(s, doc.get("id"), depth + 1)


# --------------------------------------------------------------------------------------------
# xrayd serve


class XraydServe(harness.XraydProcess):
    """One `xrayd serve` on free loopback ports. The data directory is created fresh (or given, to
    restart on an existing store); everything lives under self.dir, removed by cleanup()."""

    def __init__(self, data_dir: Optional[str] = None, extra_args=(), log_level: str = "info",
                 env: Optional[dict] = None):
        self.extra_env = env  # on top of harness.clean_env (e.g. other credentials)
        self.dir = tempfile.mkdtemp(prefix="xrayd-serve-e2e-")
        self.data_dir = data_dir or os.path.join(self.dir, "data")
        self.extra_args = list(extra_args)
        self.log_level = log_level
        self.log_path = os.path.join(self.dir, "xrayd.log")
        self.proc: Optional[subprocess.Popen] = None
        self.udp_port = self.tcp_port = self.api_port = 0
        self.returncode: Optional[int] = None
        self.started = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, ready_timeout: float = 15.0, keep_ports: bool = False) -> "XraydServe":
        """Starts xrayd serve and waits until the API answers. keep_ports=True reuses the ports of
        the previous start (a restart as an operator would do it). On failure its directory is
        removed (the error carries the log tail)."""
        try:
            return self._start(ready_timeout, keep_ports)
        except BaseException:
            self.cleanup()
            raise

    def _start(self, ready_timeout: float, keep_ports: bool) -> "XraydServe":
        last_error = ""
        for attempt in range(3):  # a freed port can be taken again before xrayd binds it
            if not (keep_ports and self.api_port):
                self.udp_port, self.tcp_port, self.api_port = harness.free_ports(
                    socket.SOCK_DGRAM, socket.SOCK_STREAM, socket.SOCK_STREAM)
            args = [harness.XRAYD_BIN, "serve", "--data-dir", self.data_dir,
                    "-b", f"127.0.0.1:{self.udp_port}", "-t", f"127.0.0.1:{self.tcp_port}",
                    "--listen", f"127.0.0.1:{self.api_port}", "-l", self.log_level, "-m", "16"] + self.extra_args
            with open(self.log_path, "ab") as log:
                log.write(f"=== {' '.join(args)}\n".encode())
                log.flush()
                try:
                    self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, cwd=self.dir,
                                                 env=harness.clean_env(self.extra_env, home=self.dir))
                except OSError as e:
                    raise RuntimeError(f"cannot run {harness.XRAYD_BIN}: {e}") from None
            self.started += 1
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self._api_answers():
                    return self
                time.sleep(0.05)
            last_error = (f"exit code {self.proc.poll()}" if self.proc.poll() is not None
                          else f"API not answering within {ready_timeout} s")
            self.kill()
            if keep_ports:
                time.sleep(0.5)
        raise RuntimeError(f"xrayd serve did not start ({last_error}):\n{self.log_tail()}")

    def _api_answers(self) -> bool:
        req = urllib.request.Request(self.endpoint + "/GetSamplingRules", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=1) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def call(self, path: str, body: dict, timeout: float = 10.0) -> tuple[int, dict]:
        """A raw REST-JSON call (no SDK): for waiting on state, not for contract checks."""
        req = urllib.request.Request(self.endpoint + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def wait_for_segments(self, ids_by_trace: dict, timeout: float = 15.0) -> dict:
        """Polls BatchGetTraces until every listed (sub)segment id is somewhere in its trace;
        returns {trace id: set of ids seen}."""
        deadline = time.monotonic() + timeout
        while True:
            seen = {}
            tids = list(ids_by_trace)
            for i in range(0, len(tids), 5):
                status, out = self.call("/Traces", {"TraceIds": tids[i:i + 5]})
                if status != 200:
                    raise AssertionError(f"BatchGetTraces answered {status}: {out}")
                for t in out.get("Traces", []):
                    ids = seen.setdefault(t["Id"], set())
                    for s in t.get("Segments", []):
                        for node, _ in walk(json.loads(s["Document"])):
                            ids.add(node.get("id"))
            if all(set(want) <= seen.get(t, set()) for t, want in ids_by_trace.items()):
                return seen
            if time.monotonic() > deadline:
                missing = {t: sorted(set(w) - seen.get(t, set())) for t, w in ids_by_trace.items()
                           if not set(w) <= seen.get(t, set())}
                raise AssertionError(f"segments not visible through BatchGetTraces after {timeout} s: "
                                     f"{dict(list(missing.items())[:5])}\n{self.log_tail()}")
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    | " + l for l in text[-lines:])


class ServeTestCase(unittest.TestCase):
    """Starts a fresh `xrayd serve` per test (self.xrayd); always killed and removed afterwards, its
    log tail printed when the test failed or xrayd died during it."""

    def setUp(self):
        self._t0 = time.monotonic()
        self.servers: list[XraydServe] = []
        self.xrayd = self.start_serve()

    def start_serve(self, **kw) -> XraydServe:
        s = XraydServe(**kw)
        self.servers.append(s)
        return s.start()

    def tearDown(self):
        failed = self._outcome_failed()
        for s in self.servers:
            crashed = s.proc is not None and s.proc.poll() is not None and s.proc.returncode not in (0, -9, None)
            if failed or crashed:
                print(f"\n--- xrayd serve log ({s.log_path}, exit {s.proc.poll() if s.proc else None}) ---\n"
                      f"{s.log_tail(60)}", file=sys.stderr)
            s.kill()
        for s in self.servers:
            s.cleanup()
        print(f"  [{self.id().split('.')[-1]}: {time.monotonic() - self._t0:.1f} s]", file=sys.stderr)

    def _outcome_failed(self) -> bool:
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None) if outcome is not None else None
        if result is not None:
            return any(t is self for t, _ in result.failures + result.errors)
        return False

    def assert_alive(self, server: Optional[XraydServe] = None):
        server = server or self.xrayd
        self.assertTrue(server.alive(), f"xrayd serve died (exit {server.proc.poll()}):\n{server.log_tail()}")


# --------------------------------------------------------------------------------------------
# Client environments


def client_env(home: str, extra: Optional[dict] = None) -> dict:
    """Dummy credentials, a fixed region, no shared config/credentials files, no proxies, no pager."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith("AWS_") and k.lower() not in
           ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy")}
    env.update({
        "HOME": home,
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": os.path.join(home, "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
    })
    if extra:
        env.update(extra)
    return env
