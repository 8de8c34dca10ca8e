"""The xrayd and hello images without a Docker engine: scripts/image_rootfs.sh assembles exactly what
deploy/docker/Dockerfile.xrayd's last stage (FROM scratch) copies; this test runs the daemon inside that
tree with chroot as uid 10001 (no other files visible), sends segments to it over UDP, checks they reach
a local fake X-Ray endpoint, and runs the HEALTHCHECK command (`xrayd healthcheck`) inside the tree.
The hello image (scripts/image_rootfs.sh --hello, given --hello PATH) the same way: it answers GET / inside
its tree and its segments reach a UDP socket standing in for the daemon.
Inside the xrayd tree it also resolves names as a FROM scratch container does (the /etc/hosts and
/etc/resolv.conf Docker mounts; a DNS server of the test's own on a loopback address), verifies TLS
against the image's CA bundle and goes through an HTTPS_PROXY. For a static executable (the release
build) the tree must be smaller than AWS's image.
Needs root (chroot): it fails, never skips, when not root — CI runs as root."""
import atexit
import json
import lzma
import random
import struct
import sys
import threading
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
import notices
from test_http_client_tls_proxy import ConnectProxy, TlsFakeXRay

SCRIPT = os.path.join(harness.REPO, "scripts", "image_rootfs.sh")
AWS_IMAGE_BYTES = 11.7e6  # public.ecr.aws/xray/aws-xray-daemon: the static binary plus a CA bundle


_ASSEMBLED = {}  # binary -> (rootfs, size): assembled once per run (the notices take seconds), copied per class


def assemble_rootfs(prefix):
    """The image's tree for harness.XRAYD_BIN, assembled by scripts/image_rootfs.sh (once per run, then
    copied) in a new temporary directory: (directory, rootfs path, size in bytes the script reports).
    Needs root (chroot)."""
    if os.geteuid() != 0:
        raise AssertionError("test_image needs root for chroot (CI runs as root); run it as root")
    if harness.XRAYD_BIN not in _ASSEMBLED:
        base = tempfile.mkdtemp(prefix="xrayd-image-base-")
        atexit.register(shutil.rmtree, base, True)
        root = os.path.join(base, "rootfs")
        out = subprocess.run(["sh", SCRIPT, harness.XRAYD_BIN, root], check=True, capture_output=True, text=True)
        _ASSEMBLED[harness.XRAYD_BIN] = (root, int(out.stdout.strip().splitlines()[-1]))
    base_root, size = _ASSEMBLED[harness.XRAYD_BIN]
    directory = tempfile.mkdtemp(prefix=prefix)
    root = os.path.join(directory, "rootfs")
    shutil.copytree(base_root, root, symlinks=True)
    return directory, root, size


class Image(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir, cls.root, cls.size = assemble_rootfs("xrayd-image-")
        print(f"\nimage tree: {cls.size} bytes ({cls.size / AWS_IMAGE_BYTES:.2f}x AWS's 11.7 MB image)")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_static_release_build_is_smaller_than_aws_image(self):
        if subprocess.run(["ldd", harness.XRAYD_BIN], capture_output=True).returncode == 0:
            return  # a dynamic (development) build carries its libraries: only the release build is compared
        self.assertLess(self.size, AWS_IMAGE_BYTES)
        self.assertFalse(os.path.exists(os.path.join(self.root, "lib")), "a static build needs no libraries")

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
                        "etc/ssl/certs/ca-certificates.crt", "usr/share/doc/xrayd/copyright.xz")
                  or f.startswith(("lib/x86_64-linux-gnu/", "lib64/ld-linux")))
            self.assertTrue(ok, f"unexpected file in the image: {f}")
        for absent in ("bin/sh", "usr/bin/curl", "usr/bin/apt-get", "usr/bin/dpkg"):
            self.assertFalse(os.path.lexists(os.path.join(self.root, absent)), absent)
        self.assertNotIn("libcurl", " ".join(files))

    def test_licence_notices_name_every_linked_library(self):
        with lzma.open(os.path.join(self.root, "usr/share/doc/xrayd/copyright.xz"), "rt") as f:
            text = f.read()
        notices.check(self, text, harness.XRAYD_BIN)
        print(f"notices: {len(text)} bytes, "
              f"{os.path.getsize(os.path.join(self.root, 'usr/share/doc/xrayd/copyright.xz'))} xz")

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


class FakeDns:
    """A DNS server on 127.a.b.c:53 (port 53: resolv.conf has no port; a random loopback address keeps
    concurrent runs apart) answering A queries for `names` and nothing else (NOERROR, no answer)."""

    def __init__(self, names):
        self.names, self.queries = names, []
        for _ in range(20):
            self.address = "127.%d.%d.%d" % (random.randint(1, 254), random.randint(0, 255), random.randint(1, 254))
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                self.sock.bind((self.address, 53))
                break
            except OSError:
                self.sock.close()
        else:
            raise AssertionError("no free loopback address for the fake DNS server")
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                return
            qid, = struct.unpack(">H", query[:2])
            i, labels = 12, []
            while query[i]:
                labels.append(query[i + 1:i + 1 + query[i]].decode())
                i += 1 + query[i]
            qtype, = struct.unpack(">H", query[i + 1:i + 3])
            name = ".".join(labels)
            self.queries.append((name, qtype))
            answer = b""
            if qtype == 1 and name in self.names:
                answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(self.names[name])
            header = struct.pack(">HHHHHH", qid, 0x8180, 1, 1 if answer else 0, 0, 0)
            self.sock.sendto(header + query[12:i + 5] + answer, peer)

    def close(self):
        self.sock.close()


class ImageNetworking(unittest.TestCase):
    """Name resolution, TLS with the image's CA bundle and HTTPS_PROXY inside the xrayd tree."""

    @classmethod
    def setUpClass(cls):
        cls.dir, cls.root, _ = assemble_rootfs("xrayd-image-net-")
        cls.cert, cls.key = os.path.join(cls.dir, "cert.pem"), os.path.join(cls.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=xray.image.test", "-addext", "subjectAltName=DNS:xray.image.test,DNS:localhost",
                        "-keyout", cls.key, "-out", cls.cert], check=True, capture_output=True)
        # The test's certificate joins the image's own CA bundle (the file xrayd finds by default).
        with open(cls.cert) as f, open(os.path.join(cls.root, "etc/ssl/certs/ca-certificates.crt"), "a") as bundle:
            bundle.write(f.read())
        # What Docker mounts into a container: /etc/hosts and /etc/resolv.conf.
        cls.dns = FakeDns({"xray.image.test": "127.0.0.1"})
        with open(os.path.join(cls.root, "etc/resolv.conf"), "w") as f:
            f.write(f"nameserver {cls.dns.address}\noptions timeout:2 attempts:2\n")
        with open(os.path.join(cls.root, "etc/hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n127.0.0.1 proxy.image.test\n")

    @classmethod
    def tearDownClass(cls):
        cls.dns.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def deliver(self, endpoint, env=None):
        """Runs the image's daemon in the tree against `endpoint`; returns the segment ids sent."""
        xray_env = harness.clean_env(env)
        for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
            xray_env.pop(name, None)
        udp, health = harness.free_ports(socket.SOCK_DGRAM, socket.SOCK_STREAM)
        log_path = os.path.join(self.dir, "xrayd-net.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(["chroot", "--userspec=10001:10001", self.root, "/usr/bin/xrayd", "-t",
                                     f"127.0.0.1:{udp}", "-b", f"127.0.0.1:{udp}", "--health-address",
                                     f"127.0.0.1:{health}", "-o", "-n", fake_xray.TEST_REGION, "--endpoint", endpoint],
                                    stdout=log, stderr=subprocess.STDOUT, env=xray_env)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait()))
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:  # ready once the health address answers
            try:
                socket.create_connection(("127.0.0.1", health), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        self.assertIsNone(proc.poll(), Image.read(log_path))
        sender = harness.UdpSender(udp)
        segs = [harness.make_segment("image-net") for _ in range(10)]
        sender.send_all(harness.datagram(s) for s in segs)
        sender.close()
        self.log_path = log_path
        return proc, [s["id"] for s in segs]

    def test_https_to_a_name_resolved_by_dns_verified_with_the_image_bundle(self):
        xray = TlsFakeXRay(self.cert, self.key).start()
        self.addCleanup(xray.stop)
        proc, ids = self.deliver(f"https://xray.image.test:{xray.port}")
        missing = xray.wait_for_ids(ids, timeout=15)
        self.assertFalse(missing, Image.read(self.log_path))
        self.assertEqual(xray.signature_failures, [])
        self.assertIn(("xray.image.test", 1), self.dns.queries)
        proc.terminate()
        self.assertEqual(proc.wait(timeout=15), 0)

    def test_https_through_a_proxy_named_in_etc_hosts(self):
        xray = TlsFakeXRay(self.cert, self.key).start()
        self.addCleanup(xray.stop)
        proxy = ConnectProxy()
        self.addCleanup(proxy.stop)
        proc, ids = self.deliver(f"https://localhost:{xray.port}",
                                 {"HTTPS_PROXY": f"http://proxy.image.test:{proxy.port}"})
        missing = xray.wait_for_ids(ids, timeout=15)
        self.assertFalse(missing, Image.read(self.log_path))
        self.assertEqual(set(proxy.requests), {f"CONNECT localhost:{xray.port} HTTP/1.1"})
        proc.terminate()
        self.assertEqual(proc.wait(timeout=15), 0)


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

    def test_licence_notices_name_every_linked_library(self):
        with lzma.open(os.path.join(self.root, "usr/share/doc/hello/copyright.xz"), "rt") as f:
            notices.check(self, f.read(), HELLO, sources=("glibc", "gcc-12", "nlohmann-json3"), common=("GPL-3",))

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
