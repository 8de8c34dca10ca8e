#!/usr/bin/env python3
"""The OpenTelemetry bridge's exporter end to end: real X-Ray SDK segments (Node and Python, from
tests/data/otlp) sent over UDP to `xrayd serve --otlp-endpoint` go out as OTLP/HTTP
  1. to a second `xrayd serve --otlp-listen`, and read back there with BatchGetTraces: the same ids,
     names, annotations and metadata (X-Ray -> OTLP -> X-Ray through two daemons);
  2. to a fake collector that answers 429 with Retry-After, then 503, then 200 with a partial success
     (OTLP/JSON, gzip): the batch is retried whole, honouring the wait, and xrayd keeps running.

    python3 tests/e2e/test_otlp_export.py --xrayd build/xrayd [-v]
"""

import gzip
import http.server
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import harness
import serve_harness as sh

DATA = os.path.join(harness.HERE, "..", "data", "otlp")


def sdk_segments() -> list:
    """The real SDK documents, complete ones only, re-stamped with trace ids of now."""
    out = []
    epoch = "%08x" % int(time.time())
    for name in ("node_sdk_segments.jsonl", "python_sdk_segments.jsonl"):
        with open(os.path.join(DATA, name)) as f:
            for line in f:
                doc = json.loads(line)
                if doc.get("in_progress") or len(line) > 60000:
                    continue
                doc["trace_id"] = "1-" + epoch + doc["trace_id"][10:]
                out.append(doc)
    return out


class Collector(http.server.ThreadingHTTPServer):
    """A fake OTLP/HTTP collector: answers from a script of (status, headers, body) and records
    every request body (gunzipped, decoded JSON)."""

    def __init__(self, script):
        self.script, self.requests, self.lock = list(script), [], threading.Lock()
        super().__init__(("127.0.0.1", 0), CollectorHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class CollectorHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        with self.server.lock:
            self.server.requests.append((time.monotonic(), self.path, self.headers.get("Content-Type"),
                                         json.loads(body)))
            status, headers, answer = self.server.script.pop(0) if self.server.script else (200, {}, b"{}")
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


class TlsCollector(Collector):
    """The same collector behind TLS that requires a client certificate signed by `ca`."""

    def __init__(self, script, cert, key, ca):
        self.script, self.requests, self.lock = list(script), [], threading.Lock()
        http.server.ThreadingHTTPServer.__init__(self, ("127.0.0.1", 0), CollectorHandler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(ca)
        self.socket = ctx.wrap_socket(self.socket, server_side=True)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def make_pki(d: str) -> dict:
    """A private CA, a server certificate for 127.0.0.1 and a client certificate, with openssl."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    f = {n: os.path.join(d, n) for n in ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem", "cli.key",
                                          "cli.csr", "cli.pem", "san.cnf")}
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=xrayd test CA",
        "-keyout", f["ca.key"], "-out", f["ca.pem"])
    with open(f["san.cnf"], "w") as c:
        c.write("subjectAltName=IP:127.0.0.1\n")
    for who, cn in (("srv", "127.0.0.1"), ("cli", "xrayd client")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", f[who + ".key"],
            "-out", f[who + ".csr"])
        extra = ["-extfile", f["san.cnf"]] if who == "srv" else []
        run("x509", "-req", "-in", f[who + ".csr"], "-CA", f["ca.pem"], "-CAkey", f["ca.key"], "-CAcreateserial",
            "-days", "2", "-out", f[who + ".pem"], *extra)
    return f


def span_ids(request: dict) -> set:
    return {s["spanId"] for rs in request["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]}


class OtlpExportTest(sh.ServeTestCase):
    def setUp(self):  # each test starts its own daemons
        self._t0 = time.monotonic()
        self.servers = []

    def test_xray_to_otlp_to_another_xrayd(self):
        b_port = harness.free_tcp_port()
        b = self.start_serve(extra_args=["--otlp-listen", f"127.0.0.1:{b_port}"])
        a = self.start_serve(extra_args=["--otlp-endpoint", f"http://127.0.0.1:{b_port}"])
        docs = sdk_segments()
        sh.send_udp(a.udp_port, docs)
        want = {}
        for d in docs:
            want.setdefault(d["trace_id"], set()).update(n["id"] for n, _ in sh.walk(d))
        b.wait_for_segments(want, timeout=20)
        status, out = b.call("/Traces", {"TraceIds": [docs[0]["trace_id"]]})
        self.assertEqual(status, 200)
        got = json.loads(out["Traces"][0]["Segments"][0]["Document"])
        self.assertEqual(got["name"], docs[0]["name"])
        self.assertEqual(got.get("annotations"), docs[0].get("annotations"))
        self.assertEqual(got.get("metadata"), docs[0].get("metadata"))
        self.assertEqual(got.get("user"), docs[0].get("user"))
        self.assert_alive(a)
        self.assert_alive(b)

    def test_retry_after_503_and_partial_success(self):
        partial = json.dumps({"partialSuccess": {"rejectedSpans": "1", "errorMessage": "one bad span"}}).encode()
        collector = Collector([(429, {"Retry-After": "1"}, b""), (503, {}, b""), (200, {}, partial)])
        url = f"http://127.0.0.1:{collector.server_address[1]}"
        a = self.start_serve(extra_args=["--otlp-endpoint", url, "--otlp-encoding", "json"])
        doc = sh.segment(sh.trace_id(), "retried", annotations={"k": "v"})
        sh.send_udp(a.udp_port, [doc])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with collector.lock:
                if len(collector.requests) >= 3:
                    break
            time.sleep(0.1)
        with collector.lock:
            reqs = list(collector.requests)
        self.assertGreaterEqual(len(reqs), 3, "the batch was not retried after 429 and 503")
        self.assertEqual({r[1] for r in reqs}, {"/v1/traces"})
        self.assertEqual({r[2] for r in reqs}, {"application/json"})
        self.assertEqual([span_ids(r[3]) for r in reqs[:3]], [{doc["id"]}] * 3)  # the whole batch each time
        self.assertGreaterEqual(reqs[1][0] - reqs[0][0], 0.9, "Retry-After: 1 not honoured")
        time.sleep(0.5)
        with collector.lock:
            self.assertEqual(len(collector.requests), 3, "a partial success must not be retried")
        self.assert_alive(a)
        collector.shutdown()
        collector.server_close()

    def test_mutual_tls_with_a_private_ca(self):
        """Otlp.CaFile / CertFile / KeyFile: the collector's certificate is verified against the
        given CA (not the system's), and xrayd presents its client certificate; without it the
        collector refuses the handshake and nothing arrives."""
        d = tempfile.mkdtemp(prefix="xrayd-otlp-tls-")
        self.addCleanup(shutil.rmtree, d, True)
        pki = make_pki(d)
        collector = TlsCollector([], pki["srv.pem"], pki["srv.key"], pki["ca.pem"])
        self.addCleanup(collector.server_close)
        self.addCleanup(collector.shutdown)
        url = f"https://127.0.0.1:{collector.server_address[1]}"

        def config(name, with_client_cert):
            path = os.path.join(d, name)
            with open(path, "w") as c:
                c.write(f"Version: 2\nOtlp:\n  Endpoint: {url}\n  Encoding: json\n  CaFile: {pki['ca.pem']}\n")
                if with_client_cert:
                    c.write(f"  CertFile: {pki['cli.pem']}\n  KeyFile: {pki['cli.key']}\n")
            return path

        without = self.start_serve(extra_args=["-c", config("no-cert.yaml", False)])
        sh.send_udp(without.udp_port, [sh.segment(sh.trace_id(), "no-client-cert")])
        good = self.start_serve(extra_args=["-c", config("mtls.yaml", True)])
        doc = sh.segment(sh.trace_id(), "mutual-tls")
        sh.send_udp(good.udp_port, [doc])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with collector.lock:
                if collector.requests:
                    break
            time.sleep(0.1)
        time.sleep(1.5)  # the daemon without a client certificate has had its tries by now
        with collector.lock:
            reqs = list(collector.requests)
        self.assertTrue(reqs, "nothing arrived over mutual TLS:\n" + good.log_tail(30))
        self.assertEqual(set().union(*(span_ids(r[3]) for r in reqs)), {doc["id"]},
                         "only the daemon with the client certificate may get through")
        self.assert_alive(good)
        self.assert_alive(without)

    def test_daemon_mode_otlp_only_without_aws(self):
        """`xrayd --otlp-only --otlp-endpoint URL` (daemon mode, no AWS credentials, no region):
        segments go to the collector alone."""
        collector = Collector([])
        self.addCleanup(collector.server_close)
        self.addCleanup(collector.shutdown)
        udp, = harness.free_ports(__import__("socket").SOCK_DGRAM)
        d = tempfile.mkdtemp(prefix="xrayd-otlp-only-")
        self.addCleanup(shutil.rmtree, d, True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": d}  # nothing of AWS's
        log = open(os.path.join(d, "xrayd.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen([harness.XRAYD_BIN, "--otlp-only", "--otlp-endpoint",
                                 f"http://127.0.0.1:{collector.server_address[1]}", "--otlp-encoding", "json",
                                 "-b", f"127.0.0.1:{udp}", "-t", f"127.0.0.1:{udp}", "-l", "info"],
                                env=env, cwd=d, stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(proc.kill)
        doc = sh.segment(sh.trace_id(), "otlp-only")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            sh.send_udp(udp, [doc])  # resent until the receiver is up: duplicates are fine here
            time.sleep(0.5)
            with collector.lock:
                if collector.requests:
                    break
        with open(os.path.join(d, "xrayd.log")) as f:
            out = f.read()
        self.assertIsNone(proc.poll(), "xrayd --otlp-only exited:\n" + out)
        with collector.lock:
            reqs = list(collector.requests)
        self.assertTrue(reqs, "nothing reached the collector:\n" + out)
        self.assertIn(doc["id"], set().union(*(span_ids(r[3]) for r in reqs)))
        self.assertNotIn("Sending segments to", out)  # no X-Ray exporter
        proc.terminate()
        self.assertEqual(proc.wait(15), 0, out)


if __name__ == "__main__":
    harness.main()
