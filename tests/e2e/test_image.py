"""The xrayd and hello images without a Docker engine: scripts/image_rootfs.sh assembles exactly what
deploy/docker/Dockerfile.xrayd's last stage (FROM scratch) copies; this test runs the daemon inside that
tree with chroot as uid 10001 (no other files visible), sends segments to it over UDP, checks they reach
a local fake X-Ray endpoint, and runs the HEALTHCHECK command (`xrayd healthcheck`) inside the tree.
The hello image (scripts/image_rootfs.sh --hello, given --hello PATH) the same way: it answers GET / inside
its tree and its segments reach a UDP socket standing in for the daemon.
Needs root (chroot): it fails, never skips, when not root — CI runs as root."""
import json
import sys
import urllib.request
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import fake_xray
import harness

SCRIPT = os.path.join(harness.REPO, "scripts", "image_rootfs.sh")
AWS_IMAGE_BYTES = 11.7e6  # public.ecr.aws/xray/aws-xray-daemon: the static binary plus a CA bundle


class Image(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise AssertionError("test_image needs root for chroot (CI runs as root); run it as root")
        cls.dir = tempfile.mkdtemp(prefix="xrayd-image-")
        cls.root = os.path.join(cls.dir, "rootfs")
        out = subprocess.run(["sh", SCRIPT, harness.XRAYD_BIN, cls.root], check=True, capture_output=True, text=True)
        cls.size = int(out.stdout.strip().splitlines()[-1])
        print(f"\nimage tree: {cls.size} bytes ({cls.size / AWS_IMAGE_BYTES:.2f}x AWS's 11.7 MB image)")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    @staticmethod
    def read(path):
        with open(path, errors="replace") as f:
            return f.read()

    def chroot(self, *argv, **kw):
        return ["chroot", "--userspec=10001:10001", self.root, *argv]

    def test_tree_holds_only_the_binary_its_libraries_certificates_and_config(self):
        files = sorted(os.path.relpath(os.path.join(d, f), self.root)
                       for d, _, fs in os.walk(self.root) for f in fs)
        for f in files:
            ok = (f in ("usr/bin/xrayd", "usr/bin/xray", "xray", "etc/amazon/xray/cfg.yaml", "etc/passwd", "etc/group",
                        "etc/ssl/certs/ca-certificates.crt")
                  or f.startswith(("lib/x86_64-linux-gnu/", "lib64/ld-linux")))
            self.assertTrue(ok, f"unexpected file in the image: {f}")
        for absent in ("bin/sh", "usr/bin/curl", "usr/bin/apt-get", "usr/bin/dpkg"):
            self.assertFalse(os.path.lexists(os.path.join(self.root, absent)), absent)
        self.assertNotIn("libcurl", " ".join(files))

    def test_daemon_runs_inside_the_tree_and_delivers(self):
        with fake_xray.FakeXRay() as xray:
            udp, health = harness.free_ports(socket.SOCK_DGRAM, socket.SOCK_STREAM)
            log = open(os.path.join(self.dir, "xrayd.log"), "wb")
            # The image's ENTRYPOINT, on loopback ports, plus the test's endpoint and region.
            proc = subprocess.Popen(self.chroot("/usr/bin/xrayd", "-t", f"127.0.0.1:{udp}", "-b", f"127.0.0.1:{udp}",
                                                "--health-address", f"127.0.0.1:{health}", "-o", "-n", fake_xray.TEST_REGION,
                                                "--endpoint", xray.endpoint),
                                    stdout=log, stderr=subprocess.STDOUT, env=harness.clean_env())
            try:
                deadline = time.monotonic() + 10
                while True:
                    r = subprocess.run(self.chroot("/usr/bin/xrayd", "healthcheck", "--address", f"127.0.0.1:{health}"),
                                       capture_output=True, text=True, timeout=10)
                    if r.returncode == 0 or time.monotonic() > deadline or proc.poll() is not None:
                        break
                    time.sleep(0.1)
                self.assertEqual(r.returncode, 0, r.stderr + self.read(log.name))
                sender = harness.UdpSender(udp)
                segs = [harness.make_segment("image") for _ in range(20)]
                sender.send_all(harness.datagram(s) for s in segs)
                sender.close()
                missing = xray.wait_for_ids([s["id"] for s in segs], timeout=10)
                self.assertFalse(missing, self.read(log.name))
                self.assertEqual(xray.signature_failures, [])
                # The HEALTHCHECK's default address is the ENTRYPOINT's 127.0.0.1:2100; nothing is there here.
                r = subprocess.run(self.chroot("/usr/bin/xrayd", "healthcheck", "--address", f"127.0.0.1:{harness.free_tcp_port()}"),
                                   capture_output=True, text=True, timeout=10)
                self.assertEqual(r.returncode, 1)
            finally:
                proc.terminate()
                self.assertEqual(proc.wait(timeout=15), 0)
                log.close()


class HelloImage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise AssertionError("test_image needs root for chroot (CI runs as root); run it as root")
        if not HELLO:
            raise AssertionError("pass --hello PATH (the hello example binary)")
        cls.dir = tempfile.mkdtemp(prefix="xrayd-hello-image-")
        cls.root = os.path.join(cls.dir, "rootfs")
        out = subprocess.run(["sh", SCRIPT, "--hello", HELLO, cls.root], check=True, capture_output=True, text=True)
        cls.size = int(out.stdout.strip().splitlines()[-1])
        print(f"\nhello image tree: {cls.size} bytes")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_hello_answers_and_traces_inside_the_tree(self):
        self.assertFalse(os.path.lexists(os.path.join(self.root, "bin", "sh")))
        daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(5)
        port = harness.free_tcp_port()
        env = dict(harness.clean_env(), PORT=str(port), XRAY_SERVICE_NAME="hello-image",
                   AWS_XRAY_DAEMON_ADDRESS="tcp:127.0.0.1:1 udp:127.0.0.1:%d" % daemon.getsockname()[1])
        proc = subprocess.Popen(["chroot", "--userspec=10001:10001", self.root, "/usr/bin/hello"], env=env,
                                stderr=subprocess.DEVNULL)
        try:
            body, deadline = None, time.monotonic() + 10
            while body is None and time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                        body = r.read()
                except OSError:
                    time.sleep(0.1)
            self.assertIsNotNone(body, "hello did not answer inside its image tree")
            names = set()
            while "hello-image" not in names:
                data, _ = daemon.recvfrom(65536)
                names.add(json.loads(data.split(b"\n", 1)[1]).get("name"))
            self.assertIn("hello-image", names)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            daemon.close()


HELLO = None

if __name__ == "__main__":
    if "--hello" in sys.argv:
        i = sys.argv.index("--hello")
        HELLO = os.path.abspath(sys.argv[i + 1])
        del sys.argv[i:i + 2]
    harness.main()
