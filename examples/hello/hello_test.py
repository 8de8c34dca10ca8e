#!/usr/bin/env python3
"""The hello example as a user runs it: the built binary, a real HTTP request, and a UDP socket standing
in for the X-Ray daemon. Checks the article's answer and log line, that each request yields two linked
segments (hello → hello-downstream), that an incoming trace header is continued, and a clean SIGTERM.

    python3 examples/hello/hello_test.py build/examples/hello/hello
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

HELLO = None
HEADER = b'{"format": "json", "version": 1}\n'


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HelloTest(unittest.TestCase):
    def setUp(self):
        self.daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.daemon.bind(("127.0.0.1", 0))
        self.daemon.settimeout(5)
        self.port = free_tcp_port()
        env = dict(os.environ, PORT=str(self.port), XRAY_SERVICE_NAME="hello-test",
                   AWS_XRAY_DAEMON_ADDRESS="tcp:127.0.0.1:1 udp:127.0.0.1:%d" % self.daemon.getsockname()[1])
        env.pop("AWS_XRAY_TRACING_NAME", None)
        self.proc = subprocess.Popen([HELLO], env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            self.fail("hello did not start listening")

    def tearDown(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.daemon.close()

    def get(self, path, headers=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), headers=headers or {})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.read().decode(), dict(resp.headers)

    def segments(self, n):
        out = {}
        for _ in range(n):
            data, _ = self.daemon.recvfrom(70000)
            self.assertTrue(data.startswith(HEADER), data[:60])
            doc = json.loads(data[len(HEADER):])
            out[doc["name"]] = doc
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=10)
        self.assertEqual(self.proc.returncode, 0, err)
        return err

    def test_hello_answers_logs_and_sends_two_linked_segments(self):
        root = "1-65e1d287-5fc6f0f34b4fb2120da8bbec"
        body, headers = self.get("/", {"X-Amzn-Trace-Id": "Root=%s;Sampled=1" % root})
        self.assertEqual(body, "Hello, X-Ray! Trace ID: %s\n" % root)
        self.assertEqual(headers.get("X-Amzn-Trace-Id"), "Root=" + root)
        segs = self.segments(2)
        front, back = segs["hello-test"], segs["hello-test-downstream"]
        self.assertEqual(front["trace_id"], root)
        self.assertEqual(back["trace_id"], root)
        call = front["subsegments"][0]
        self.assertEqual(call["namespace"], "remote")
        self.assertEqual(call["http"]["response"]["status"], 200)
        self.assertEqual(back["parent_id"], call["id"])
        self.assertEqual(front["http"]["response"]["status"], 200)
        err = self.stop()
        self.assertIn("Hello, X-Ray! Trace ID: " + root, err)

    def test_new_trace_when_no_header(self):
        body, headers = self.get("/")
        self.assertTrue(body.startswith("Hello, X-Ray! Trace ID: 1-"), body)
        trace_id = body.strip().rsplit(" ", 1)[1]
        self.assertRegex(trace_id, r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")
        self.assertEqual(headers.get("X-Amzn-Trace-Id"), "Root=" + trace_id)
        # The first request of a second is always sampled (default rule: fixed_target 1).
        segs = self.segments(2)
        self.assertEqual(segs["hello-test"]["trace_id"], trace_id)
        self.stop()


if __name__ == "__main__":
    HELLO = os.path.abspath(sys.argv.pop(1))
    unittest.main()
