"""A fake AWS X-Ray API for xrayd's end-to-end tests.

FakeXRay serves PutTraceSegments (POST {base}/TraceSegments) on 127.0.0.1 with a kernel-chosen
port. It:

* records every request (connection, headers, body, documents, the answer it gave) and every
  document it accepted;
* verifies each request's SigV4 Authorization header by recomputing the signature with botocore
  (botocore.auth.SigV4Auth over a botocore.awsrequest.AWSRequest rebuilt from the received method,
  path, signed headers and body) with the known test credentials; every mismatch is recorded in
  `signature_failures`;
* checks the request against the API's contract (JSON body, TraceSegmentDocuments a list of at most
  50 strings, each a JSON object) and records violations in `protocol_violations`;
* speaks HTTP/1.1 with keep-alive, with TCP_NODELAY set and each answer (status line, headers and
  body) sent in one write, so no Nagle / delayed-ACK stalls skew timings;
* injects faults, programmed per request: a queue of one-shot faults (`push_faults`) consumed in
  arrival order, then a default (`set_default_fault`), or a callable (`set_fault_function`).

Faults (see the Fault class): HTTP 500, 429 ThrottledException, any error status/code (e.g. 400
InvalidRequestException), stall N seconds (then answer normally, close, or another fault), close the
connection without answering, and a 200 listing UnprocessedTraceSegments. Any method/path other
than POST {base}/TraceSegments and POST {base}/TelemetryRecords (recorded, answered {}) gets a
404 JSON error.

Run as a script to serve until interrupted (handy for poking at xrayd by hand):
    python3 tests/e2e/fake_xray.py
"""

from __future__ import annotations

import argparse
import collections
import datetime
import hashlib
import hmac
import http.server
import json
import re
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

# Credentials the tests give xrayd (through its environment) and the fake verifies against.
TEST_ACCESS_KEY_ID = "AKIDXRAYDE2ETEST0001"
TEST_SECRET_ACCESS_KEY = "xrayd/e2e+secret/KEY0123456789abcdefABCDEF"
TEST_SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXRAYDE2E//token+with/odd=chars=="
TEST_REGION = "us-west-2"

MAX_DOCUMENTS_PER_CALL = 50
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_CLOCK_SKEW = datetime.timedelta(minutes=5)

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


# --------------------------------------------------------------------------------------------
# Faults


@dataclass
class Fault:
    """What to do with one PutTraceSegments request instead of (or before) accepting it."""

    kind: str  # "status", "stall", "close", "unprocessed", "custom"
    status: int = 200
    body: str = ""
    headers: tuple = ()
    seconds: float = 0.0
    then: Optional["Fault"] = None  # for "stall": what to do afterwards (None: answer normally)
    unprocessed: object = None  # for "unprocessed": int (first N docs), iterable of ids, or callable(ids)->ids
    action: Optional[Callable] = None  # for "custom": action(fake, handler, record, docs, ids, outcome_prefix)

    # -- constructors --
    @staticmethod
    def error(status: int = 500, code: str = "InternalFailure", message: str = "injected failure", headers=()) -> "Fault":
        body = json.dumps({"__type": code, "message": message})
        return Fault("status", status=status, body=body, headers=tuple(headers))

    @staticmethod
    def server_error() -> "Fault":
        return Fault.error(500, "InternalFailure", "We encountered an internal error. Please try again.")

    @staticmethod
    def throttle(retry_after: Optional[int] = None) -> "Fault":
        headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
        return Fault("status", status=429, body='{"__type":"ThrottledException","message":"Rate exceeded"}',
                     headers=headers)

    @staticmethod
    def invalid_request(message: str = "injected: request is invalid") -> "Fault":
        return Fault.error(400, "InvalidRequestException", message)

    @staticmethod
    def stall(seconds: float, then: Optional["Fault"] = None) -> "Fault":
        """Hold the request `seconds` (cut short by FakeXRay.release_stalls()), then do `then`."""
        return Fault("stall", seconds=seconds, then=then)

    @staticmethod
    def close() -> "Fault":
        """Read the request, then close the connection without a byte of answer."""
        return Fault("close")

    @staticmethod
    def unprocessed_segments(which) -> "Fault":
        """Answer 200 but list some documents in UnprocessedTraceSegments.

        `which`: an int N (the first N documents of the request), a collection of segment ids, or a
        callable taking the request's list of ids and returning the ids to refuse."""
        return Fault("unprocessed", unprocessed=which)


# --------------------------------------------------------------------------------------------
# Records


@dataclass
class RequestRecord:
    index: int
    connection: int
    peer: str
    method: str
    path: str
    headers: list  # [(name, value)] as received
    body: bytes
    received_at: float  # time.monotonic()
    documents: list = field(default_factory=list)  # raw document strings (when the body parsed)
    signature_ok: Optional[bool] = None  # None: not a PutTraceSegments request
    signature_error: str = ""
    outcome: str = ""  # "ok", "unprocessed", "status 500", "close", "stall+close", ...
    accepted_ids: list = field(default_factory=list)
    unprocessed_ids: list = field(default_factory=list)

    def header(self, name: str) -> Optional[str]:
        lname = name.lower()
        for n, v in self.headers:
            if n.lower() == lname:
                return v
        return None


def _segment_id(doc: str) -> Optional[str]:
    try:
        obj = json.loads(doc)
    except ValueError:
        return None
    return obj.get("id") if isinstance(obj, dict) else None


# --------------------------------------------------------------------------------------------
# SigV4 verification


def verify_sigv4(method: str, path: str, headers: list, body: bytes, *, access_key: str, secret_key: str,
                 session_token: Optional[str], region: str, service: str = "xray",
                 now: Optional[datetime.datetime] = None) -> tuple[bool, str]:
    """Recomputes a request's SigV4 signature with botocore. Returns (ok, reason-if-not)."""

    def get_all(name):
        lname = name.lower()
        return [v for n, v in headers if n.lower() == lname]

    auths = get_all("authorization")
    if len(auths) != 1:
        return False, f"expected one Authorization header, got {len(auths)}"
    m = _AUTH_RE.match(auths[0].strip())
    if not m:
        return False, f"malformed Authorization header: {auths[0]!r}"
    cred = m.group("cred").split("/")
    if len(cred) != 5:
        return False, f"malformed credential scope {m.group('cred')!r}"
    akid, date, scope_region, scope_service, terminator = cred
    if akid != access_key:
        return False, f"access key id {akid!r}, want {access_key!r}"
    if scope_region != region:
        return False, f"scope region {scope_region!r}, want {region!r}"
    if scope_service != service:
        return False, f"scope service {scope_service!r}, want {service!r}"
    if terminator != "aws4_request":
        return False, f"scope terminator {terminator!r}"

    amz_dates = get_all("x-amz-date")
    if len(amz_dates) != 1:
        return False, f"expected one X-Amz-Date header, got {len(amz_dates)}"
    amz_date = amz_dates[0].strip()
    try:
        signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return False, f"malformed X-Amz-Date {amz_date!r}"
    if date != amz_date[:8]:
        return False, f"scope date {date!r} is not X-Amz-Date's day {amz_date[:8]!r}"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if abs(now - signed_at) > MAX_CLOCK_SKEW:
        return False, f"X-Amz-Date {amz_date} is more than {MAX_CLOCK_SKEW} from now ({now:%Y%m%dT%H%M%SZ})"

    signed = m.group("signed").split(";")
    if signed != sorted(signed) or len(set(signed)) != len(signed) or any(s != s.lower() for s in signed):
        return False, f"SignedHeaders {m.group('signed')!r} not sorted, unique and lower-case"
    for required in ("host", "x-amz-date"):
        if required not in signed:
            return False, f"SignedHeaders {m.group('signed')!r} lacks {required}"
    if session_token is not None:
        tokens = get_all("x-amz-security-token")
        if tokens != [session_token]:
            return False, f"X-Amz-Security-Token {tokens!r}, want [{session_token!r}]"
        if "x-amz-security-token" not in signed:
            return False, "X-Amz-Security-Token is not signed"
    for name in signed:
        if not get_all(name):
            return False, f"signed header {name!r} is not in the request"
    content_sha = get_all("x-amz-content-sha256")
    if content_sha and content_sha[0] != hashlib.sha256(body).hexdigest():
        return False, "X-Amz-Content-Sha256 does not match the body"

    # Rebuild the request with exactly the signed headers and let botocore sign it.
    host = get_all("host")[0]
    request = AWSRequest(method=method, url=f"http://{host}{path}", data=body)
    for name in signed:
        request.headers[name] = ",".join(get_all(name))
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, secret_key, session_token), service, region)
    botocore_signed = signer.signed_headers(signer.headers_to_sign(request))
    if botocore_signed != m.group("signed"):
        return False, f"SignedHeaders {m.group('signed')!r}; botocore would sign {botocore_signed!r}"
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    expected = signer.signature(string_to_sign, request)
    if not hmac.compare_digest(expected, m.group("sig")):
        return False, (f"signature {m.group('sig')} != botocore's {expected}\n"
                       f"botocore canonical request:\n{canonical}\nstring to sign:\n{string_to_sign}")
    return True, ""


# --------------------------------------------------------------------------------------------
# The server


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "FakeXRay/1.0"
    sys_version = ""

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fake: FakeXRay = self.server.fake
        self.conn_id = self.fake._new_connection(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.fake._end_connection(self.connection)

    def log_message(self, fmt, *args):  # quiet; FakeXRay keeps its own records
        pass

    # One write for the whole answer.
    def _answer(self, status: int, body: bytes, content_type="application/json", extra_headers=()):
        reason = http.server.BaseHTTPRequestHandler.responses.get(status, ("Unknown",))[0]
        lines = [f"HTTP/1.1 {status} {reason}",
                 f"Content-Type: {content_type}",
                 f"Content-Length: {len(body)}",
                 f"x-amzn-RequestId: fake-{self.conn_id}-{time.monotonic_ns()}",
                 f"Date: {self.date_time_string()}"]
        for n, v in extra_headers:
            lines.append(f"{n}: {v}")
        if self.close_connection:
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        try:
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self):
        body = self._read_body()
        self.fake._dispatch(self, body)

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    def _close_without_answer(self):
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client that goes away mid-connection (xrayd killed, a timed-out request) is normal here.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class FakeXRay:
    """A PutTraceSegments endpoint. Use as a context manager or call start()/stop()."""

    def __init__(self, *, access_key=TEST_ACCESS_KEY_ID, secret_key=TEST_SECRET_ACCESS_KEY,
                 session_token: Optional[str] = TEST_SESSION_TOKEN, region=TEST_REGION, base_path: str = ""):
        self.access_key, self.secret_key, self.session_token, self.region = access_key, secret_key, session_token, region
        self.base_path = base_path.rstrip("/")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._release_generation = 0  # release_stalls() bumps it; a stall ends when it changes
        self._faults: collections.deque = collections.deque()
        self._default_fault: Optional[Fault] = None
        self._fault_fn: Optional[Callable[[int, list], Optional[Fault]]] = None
        self._connections = 0
        self._open_sockets: set = set()
        self.requests: list[RequestRecord] = []
        self.accepted: list[str] = []  # documents answered with success (not unprocessed), in order
        self.signature_failures: list[str] = []
        self.protocol_violations: list[str] = []
        self.other_requests: list[RequestRecord] = []  # anything but POST /TraceSegments or /TelemetryRecords
        self.telemetry_requests: list[RequestRecord] = []  # POST /TelemetryRecords
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # ---- lifecycle ----
    def start(self, port: int = 0) -> "FakeXRay":
        """Serves on 127.0.0.1:port (0: kernel-chosen; a given port lets a back-end come back where it was)."""
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-xray", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.release_stalls()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            with self._lock:
                open_sockets = list(self._open_sockets)
            for sock in open_sockets:  # ends the handler threads blocked on keep-alive connections
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    # ---- fault programming ----
    def push_faults(self, *faults: Fault):
        """Queue one-shot faults; each PutTraceSegments request takes the next one."""
        with self._lock:
            self._faults.extend(faults)

    def set_default_fault(self, fault: Optional[Fault]):
        """The fault for requests when the queue is empty (None: answer normally)."""
        with self._lock:
            self._default_fault = fault

    def set_fault_function(self, fn: Optional[Callable[[int, list], Optional[Fault]]]):
        """fn(request_index, document_ids) -> Fault or None, consulted after the queue."""
        with self._lock:
            self._fault_fn = fn

    def clear_faults(self):
        with self._lock:
            self._faults.clear()
            self._default_fault = None
            self._fault_fn = None

    def release_stalls(self):
        """Ends every current stall early; stalls that begin later stall again."""
        with self._changed:
            self._release_generation += 1
            self._changed.notify_all()

    # ---- queries ----
    def trace_requests(self) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests]

    def accepted_documents(self) -> list[str]:
        with self._lock:
            return list(self.accepted)

    def accepted_ids(self) -> list[str]:
        with self._lock:
            return [i for r in self.requests for i in r.accepted_ids]

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def wait_for(self, predicate: Callable[["FakeXRay"], bool], timeout: float) -> bool:
        """Waits until predicate(self) is true (re-checked on every request), up to timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                self._changed.wait(min(remaining, 0.1))

    def wait_for_ids(self, ids, timeout: float) -> set:
        """Waits until every id in `ids` was accepted; returns the ids still missing."""
        want = set(ids)
        self.wait_for(lambda f: want <= set(f.accepted_ids()), timeout)
        return want - set(self.accepted_ids())

    def summary(self) -> str:
        with self._lock:
            outcomes = collections.Counter(r.outcome for r in self.requests)
            return (f"{len(self.requests)} PutTraceSegments requests on {self._connections} connections "
                    f"({dict(outcomes)}), {len(self.accepted)} documents accepted, "
                    f"{len(self.signature_failures)} signature failures, "
                    f"{len(self.protocol_violations)} protocol violations, {len(self.other_requests)} other requests")

    # ---- internals ----
    def _new_connection(self, sock) -> int:
        with self._lock:
            self._connections += 1
            self._open_sockets.add(sock)
            return self._connections

    def _end_connection(self, sock):
        with self._lock:
            self._open_sockets.discard(sock)

    def _next_fault(self, index: int, ids: list) -> Optional[Fault]:
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            fn, default = self._fault_fn, self._default_fault
        if fn is not None:
            f = fn(index, ids)
            if f is not None:
                return f
        return default

    def _dispatch(self, h: _Handler, body: bytes):
        raw_path = h.path
        path = raw_path.split("?", 1)[0]
        with self._lock:
            rec = RequestRecord(index=len(self.requests), connection=h.conn_id, peer=f"{h.client_address[0]}:{h.client_address[1]}",
                                method=h.command, path=raw_path, headers=list(h.headers.items()), body=body,
                                received_at=time.monotonic())
        if h.command == "POST" and path == self.base_path + "/TelemetryRecords":
            # PutTelemetryRecords, as AWS's daemon and xrayd send it: recorded, answered {}.
            with self._changed:
                rec.outcome = "200"
                self.telemetry_requests.append(rec)
                self._changed.notify_all()
            h._answer(200, b"{}")
            return
        if h.command != "POST" or path != self.base_path + "/TraceSegments":
            with self._changed:
                rec.outcome = "404"
                self.other_requests.append(rec)
                self._changed.notify_all()
            msg = json.dumps({"__type": "UnknownOperationException",
                              "message": f"no such operation: {h.command} {raw_path}"}).encode()
            h._answer(404, msg if h.command != "HEAD" else b"")
            return

        ok, why = verify_sigv4(h.command, raw_path, rec.headers, body, access_key=self.access_key,
                               secret_key=self.secret_key, session_token=self.session_token, region=self.region)
        rec.signature_ok, rec.signature_error = ok, why

        violations = []
        docs = []
        try:
            payload = json.loads(body)
            docs = payload.get("TraceSegmentDocuments") if isinstance(payload, dict) else None
            if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
                violations.append("TraceSegmentDocuments is not a list of strings")
                docs = []
            elif not docs:
                violations.append("TraceSegmentDocuments is empty")
            elif len(docs) > MAX_DOCUMENTS_PER_CALL:
                violations.append(f"{len(docs)} documents in one call (max {MAX_DOCUMENTS_PER_CALL})")
            for d in docs:
                if len(d.encode("utf-8")) > MAX_DOCUMENT_BYTES:
                    violations.append(f"document over 64 KB: {d[:80]}")
                try:
                    if not isinstance(json.loads(d), dict):
                        violations.append(f"document is not a JSON object: {d[:80]}")
                except ValueError as e:
                    violations.append(f"document is not JSON ({e}): {d[:80]}")
        except ValueError as e:
            violations.append(f"body is not JSON ({e}): {body[:80]!r}")
        ctype = h.headers.get("Content-Type")
        if not ctype or "json" not in ctype:
            violations.append(f"Content-Type {ctype!r}")
        rec.documents = docs
        ids = [_segment_id(d) for d in docs]

        with self._changed:
            self.requests.append(rec)
            if not ok:
                self.signature_failures.append(f"request {rec.index}: {why}")
            self.protocol_violations.extend(f"request {rec.index}: {v}" for v in violations)
            self._changed.notify_all()

        if not ok:
            self._finish(rec, "403 bad signature")
            h._answer(403, json.dumps({"__type": "InvalidSignatureException", "message": why.splitlines()[0]}).encode())
            return
        if violations:
            self._finish(rec, "400 invalid")
            h._answer(400, json.dumps({"__type": "InvalidRequestException", "message": violations[0]}).encode())
            return

        fault = self._next_fault(rec.index, ids)
        prefix = ""
        while fault is not None and fault.kind == "stall":
            prefix += "stall+"
            deadline = time.monotonic() + fault.seconds
            with self._changed:
                generation = self._release_generation
                while self._release_generation == generation and self._server is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._changed.wait(min(remaining, 0.25))
            fault = fault.then

        if fault is None:
            self._accept(rec, docs, ids, [], prefix + "ok")
            h._answer(200, b'{"UnprocessedTraceSegments":[]}')
        elif fault.kind == "close":
            self._finish(rec, prefix + "close")
            h._close_without_answer()
        elif fault.kind == "status":
            self._finish(rec, f"{prefix}status {fault.status}")
            h._answer(fault.status, fault.body.encode(), extra_headers=fault.headers)
        elif fault.kind == "unprocessed":
            which = fault.unprocessed
            if isinstance(which, int):
                refused = [i for i in ids[:which]]
            elif callable(which):
                refused = list(which(ids))
            else:
                refused = [i for i in ids if i in set(which)]
            self._accept(rec, docs, ids, refused, prefix + "unprocessed")
            answer = {"UnprocessedTraceSegments": [
                {"Id": i, "ErrorCode": "InvalidSegment", "Message": "injected: unprocessed"} for i in refused]}
            h._answer(200, json.dumps(answer).encode())
        elif fault.kind == "custom":  # fault_backend.py's modes: the action answers (or not) itself
            fault.action(self, h, rec, docs, ids, prefix)
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")

    def _finish(self, rec: RequestRecord, outcome: str):
        with self._changed:
            rec.outcome = outcome
            self._changed.notify_all()

    def _accept(self, rec, docs, ids, refused, outcome):
        refused_set = set(refused)
        with self._changed:
            rec.outcome = outcome
            rec.unprocessed_ids = list(refused)
            for d, i in zip(docs, ids):
                if i in refused_set:
                    continue
                rec.accepted_ids.append(i)
                self.accepted.append(d)
            self._changed.notify_all()


def main(argv=None):
    p = argparse.ArgumentParser(description="Serve a fake X-Ray PutTraceSegments API until interrupted.")
    p.parse_args(argv)
    fake = FakeXRay().start()
    print(f"FakeXRay on {fake.endpoint}; credentials {fake.access_key} / region {fake.region}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
        print(fake.summary())
        for f in fake.signature_failures + fake.protocol_violations:
            print(" ", f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
