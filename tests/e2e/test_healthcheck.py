"""`xrayd healthcheck`, the image's HEALTHCHECK command, against a real running xrayd and against
ports where nothing (or something wrong) answers: exit 0 only when /healthz answers 200."""
import http.server
import os
import socket
import subprocess
import threading
import time
import unittest

import fake_xray
import harness


def healthcheck(*args, env=None, timeout=15):
    t0 = time.monotonic()
    r = subprocess.run([harness.XRAYD_BIN, "healthcheck", *args], capture_output=True, text=True,
                       timeout=timeout, env=env or harness.clean_env())
    return r, time.monotonic() - t0


class Healthcheck(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.xray = fake_xray.FakeXRay().start()
        cls.daemon = harness.Xrayd(cls.xray.endpoint).start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.terminate()
        cls.daemon.cleanup()
        cls.xray.stop()

    def test_healthy_daemon_exits_0(self):
        r, _ = healthcheck("--address", f"127.0.0.1:{self.daemon.health_port}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("healthy", r.stdout)

    def test_wildcard_host_is_probed_on_loopback(self):
        r, _ = healthcheck("--address", f"0.0.0.0:{self.daemon.health_port}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("http://127.0.0.1:", r.stdout)

    def test_address_from_the_config_file(self):
        cfg = os.path.join(self.daemon.dir, "health.yaml")
        with open(cfg, "w") as f:
            f.write(f"Version: 2\nXrayd:\n  HealthAddress: 127.0.0.1:{self.daemon.health_port}\n")
        r, _ = healthcheck("-c", cfg)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_environment_proxy_is_not_used(self):
        # A proxy that does not exist: the probe must go straight to the loopback address.
        env = harness.clean_env({"http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
                                 "ALL_PROXY": "http://127.0.0.1:9"})
        r, _ = healthcheck("--address", f"127.0.0.1:{self.daemon.health_port}", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_dead_port_exits_1(self):
        port = harness.free_tcp_port()
        r, took = healthcheck("--address", f"127.0.0.1:{port}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("refused", r.stderr.lower())
        self.assertLess(took, 3.0)

    def test_silent_peer_times_out_with_exit_1(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(4)  # accepts (kernel backlog) but never answers
            r, took = healthcheck("--address", f"127.0.0.1:{s.getsockname()[1]}", "--timeout", "0.5")
        self.assertEqual(r.returncode, 1)
        self.assertLess(took, 3.0)

    def test_non_200_exits_1(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            r, _ = healthcheck("--address", f"127.0.0.1:{server.server_address[1]}")
        finally:
            server.shutdown()
            server.server_close()
        self.assertEqual(r.returncode, 1)
        self.assertIn("503", r.stderr)

    def test_bad_usage_exits_1(self):
        for args in (["--address", "nocolon"], ["--bogus"], ["--timeout", "-1"], ["extra"]):
            r, _ = healthcheck(*args)
            self.assertEqual(r.returncode, 1, args)
            self.assertTrue(r.stderr.strip(), args)


if __name__ == "__main__":
    harness.main()
