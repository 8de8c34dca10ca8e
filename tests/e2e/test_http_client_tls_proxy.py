"""xrayd's own HTTP client (src/http/http_client.cc, Boost.Beast + OpenSSL) on the paths libcurl used
to cover: HTTPS to the X-Ray endpoint with certificate verification against a given CA bundle
(SSL_CERT_FILE), refusal of an untrusted certificate, HTTPS through an HTTP proxy's CONNECT tunnel
(HTTPS_PROXY), NO_PROXY, and a plain-http request through a proxy.
The endpoint is fake_xray.py behind TLS; every request's SigV4 signature is verified."""
import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import fake_xray
import harness


class TlsFakeXRay(fake_xray.FakeXRay):
    """FakeXRay behind TLS with the given certificate."""

    def __init__(self, cert, key):
        super().__init__()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)

    def start(self):
        self._server = fake_xray._Server(("127.0.0.1", 0), fake_xray._Handler)
        self._server.socket = self.ctx.wrap_socket(self._server.socket, server_side=True)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    @property
    def endpoint(self):
        return f"https://localhost:{self.port}"


class ConnectProxy:
    """A forward proxy: CONNECT tunnels and absolute-form plain-http requests, recording both."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests = []  # request lines
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = c.recv(4096)
            if not chunk:
                c.close()
                return
            head += chunk
        header, rest = head.split(b"\r\n\r\n", 1)
        line = header.split(b"\r\n")[0].decode()
        self.requests.append(line)
        method, target, _ = line.split(" ")
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            up = socket.create_connection((host, int(port)))
            c.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        else:  # http://host:port/path: forward this one request as origin-form, then close
            hostport, path = target[len("http://"):].split("/", 1)
            host, port = hostport.rsplit(":", 1)
            up = socket.create_connection((host, int(port)))
            lines = header.split(b"\r\n")
            lines[0] = f"{method} /{path} HTTP/1.1".encode()
            lines = [l for l in lines if not l.lower().startswith(b"proxy-")]
            up.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + rest)
        self._pipe(c, up)

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                r, _, _ = select.select([a, b], [], [], 30)
                if not r:
                    return
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            pass
        finally:
            a.close()
            b.close()

    def stop(self):
        self.stopped = True
        self.sock.close()


class TlsAndProxy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="xrayd-tls-")
        cls.cert, cls.key = os.path.join(cls.dir, "cert.pem"), os.path.join(cls.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", cls.key, "-out", cls.cert],
                       check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def run_daemon(self, endpoint, env, batches=3):
        """Starts xrayd with `env`, sends `batches` bursts of segments a second apart; returns (daemon, ids)."""
        daemon = harness.Xrayd(endpoint, env=env).start()
        self.addCleanup(daemon.cleanup)
        sender = harness.UdpSender(daemon.udp_port)
        self.addCleanup(sender.close)
        ids = []
        for _ in range(batches):
            segs = [harness.make_segment("tls") for _ in range(5)]
            ids += [s["id"] for s in segs]
            sender.send_all(harness.datagram(s) for s in segs)
            time.sleep(1.2)
        return daemon, ids

    def start_xray(self):
        xray = TlsFakeXRay(self.cert, self.key).start()
        self.addCleanup(xray.stop)
        return xray

    def assert_delivered(self, xray, ids, daemon):
        missing = xray.wait_for_ids(ids, timeout=10)
        self.assertFalse(missing, f"{len(missing)} segments missing:\n{daemon.log_tail()}")
        self.assertEqual(xray.signature_failures, [])

    def test_https_verified_against_the_given_bundle(self):
        xray = self.start_xray()
        daemon, ids = self.run_daemon(xray.endpoint, {"SSL_CERT_FILE": self.cert})
        self.assert_delivered(xray, ids, daemon)
        # At most one TLS connection per batch (each of the 8 sender threads keeps its own alive;
        # the unit test http_client_test checks reuse on one Client).
        self.assertLessEqual(xray.connections, 3)

    def test_untrusted_certificate_is_refused(self):
        xray = self.start_xray()
        daemon, ids = self.run_daemon(xray.endpoint, {}, batches=1)
        time.sleep(1.0)
        self.assertEqual(xray.accepted_ids(), [])
        self.assertIn("tls", daemon.log_text().lower())

    def test_https_through_a_connect_proxy(self):
        xray = self.start_xray()
        proxy = ConnectProxy()
        self.addCleanup(proxy.stop)
        daemon, ids = self.run_daemon(xray.endpoint, {"SSL_CERT_FILE": self.cert,
                                                      "HTTPS_PROXY": f"http://127.0.0.1:{proxy.port}"})
        self.assert_delivered(xray, ids, daemon)
        self.assertTrue(proxy.requests)
        self.assertEqual(set(proxy.requests), {f"CONNECT localhost:{xray.port} HTTP/1.1"})

    def test_no_proxy_goes_direct(self):
        xray = self.start_xray()
        dead = harness.free_tcp_port()
        daemon, ids = self.run_daemon(xray.endpoint, {"SSL_CERT_FILE": self.cert, "HTTPS_PROXY": f"http://127.0.0.1:{dead}",
                                                      "NO_PROXY": "example.com,localhost"}, batches=1)
        self.assert_delivered(xray, ids, daemon)

    def test_plain_http_through_a_proxy(self):
        xray = fake_xray.FakeXRay().start()
        self.addCleanup(xray.stop)
        proxy = ConnectProxy()
        self.addCleanup(proxy.stop)
        daemon, ids = self.run_daemon(xray.endpoint, {}, batches=1)
        daemon.terminate()
        daemon2 = harness.Xrayd(xray.endpoint, extra_args=["-p", f"http://127.0.0.1:{proxy.port}"]).start()
        self.addCleanup(daemon2.cleanup)
        sender = harness.UdpSender(daemon2.udp_port)
        self.addCleanup(sender.close)
        segs = [harness.make_segment("via-proxy") for _ in range(3)]
        sender.send_all(harness.datagram(s) for s in segs)
        self.assert_delivered(xray, ids + [s["id"] for s in segs], daemon2)
        self.assertTrue(any(r.startswith(f"POST http://127.0.0.1:{xray.port}/TraceSegments ") for r in proxy.requests),
                        proxy.requests)


if __name__ == "__main__":
    harness.main()
