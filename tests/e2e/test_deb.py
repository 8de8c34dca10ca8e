"""xrayd's Debian package (scripts/deb_package.sh, CMake target `deb`): built from the given xrayd, its
control data and file list checked, unpacked into a scratch root with `dpkg-deb -x`, and the installed
/usr/bin/xray run against a local fake X-Ray with the installed /etc/amazon/xray/cfg.yaml; the maintainer
scripts are checked for syntax and for what they do (user, unit enabled)."""
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

SCRIPT = os.path.join(harness.REPO, "scripts", "deb_package.sh")


class DebPackage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="xrayd-deb-")
        out = subprocess.run(["sh", SCRIPT, harness.XRAYD_BIN, "0.1.0", cls.dir], check=True, capture_output=True, text=True)
        cls.deb = out.stdout.strip().splitlines()[-1]
        cls.root = os.path.join(cls.dir, "root")
        subprocess.run(["dpkg-deb", "-x", cls.deb, cls.root], check=True)
        cls.control = os.path.join(cls.dir, "control")
        subprocess.run(["dpkg-deb", "-e", cls.deb, cls.control], check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def field(self, name):
        return subprocess.run(["dpkg-deb", "-f", self.deb, name], check=True, capture_output=True, text=True).stdout.strip()

    def test_control(self):
        self.assertEqual(self.field("Package"), "xrayd")
        self.assertEqual(self.field("Version"), "0.1.0")
        for name in ("Conflicts", "Replaces", "Provides"):
            self.assertEqual(self.field(name), "xray", name)
        depends = self.field("Depends")
        # A dynamic build depends on the packages of the libraries it loads; the static release build on none.
        if subprocess.run(["ldd", harness.XRAYD_BIN], capture_output=True).returncode == 0:
            self.assertIn("libc6", depends)
        else:
            self.assertEqual(depends, "adduser, init-system-helpers")
        self.assertIn("adduser", depends)
        self.assertNotIn("libcurl", depends)
        with open(os.path.join(self.control, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/amazon/xray/cfg.yaml"])

    def test_files(self):
        listing = subprocess.run(["dpkg-deb", "-c", self.deb], check=True, capture_output=True, text=True).stdout
        for line in listing.splitlines():
            self.assertIn(" root/root ", line, line)
        self.assertTrue(os.access(os.path.join(self.root, "usr/bin/xrayd"), os.X_OK))
        self.assertEqual(os.readlink(os.path.join(self.root, "usr/bin/xray")), "xrayd")
        with open(os.path.join(self.root, "etc/amazon/xray/cfg.yaml")) as f, \
                open(os.path.join(harness.REPO, "deploy/systemd/cfg.yaml")) as g:
            self.assertEqual(f.read(), g.read())
        with open(os.path.join(self.root, "lib/systemd/system/xrayd.service")) as f:
            unit = f.read()
        self.assertIn("ExecStart=/usr/bin/xrayd -c /etc/amazon/xray/cfg.yaml", unit)
        self.assertIn("User=xray", unit)
        self.assertIn("WantedBy=multi-user.target", unit)

    def test_copyright_names_every_linked_library(self):
        with open(os.path.join(self.root, "usr/share/doc/xrayd/copyright")) as f:
            text = f.read()
        notices.check(self, text, harness.XRAYD_BIN)
        # Boost's copyright file whole (the image's copy keeps only the stanzas of the headers compiled in).
        self.assertTrue("libs/log/include/boost/log/detail/asio_fwd.hpp" in text, "Boost's copyright cut")

    def test_maintainer_scripts(self):
        for name in ("postinst", "prerm", "postrm"):
            path = os.path.join(self.control, name)
            self.assertTrue(os.access(path, os.X_OK), name)
            subprocess.run(["sh", "-n", path], check=True)
        with open(os.path.join(self.control, "postinst")) as f:
            postinst = f.read()
        self.assertIn("adduser --system --group", postinst)
        self.assertIn(" xray", postinst)
        self.assertIn("deb-systemd-helper enable xrayd.service", postinst)

    def test_installed_binary_relays_to_a_local_sink(self):
        binary = os.path.join(self.root, "usr/bin/xray")
        cfg = os.path.join(self.root, "etc/amazon/xray/cfg.yaml")
        with fake_xray.FakeXRay() as xray:
            udp, health = harness.free_ports(socket.SOCK_DGRAM, socket.SOCK_STREAM)
            log = os.path.join(self.dir, "xray.log")
            proc = subprocess.Popen([binary, "-c", cfg, "-o", "-n", fake_xray.TEST_REGION, "-b", f"127.0.0.1:{udp}",
                                     "-t", f"127.0.0.1:{udp}", "--endpoint", xray.endpoint, "-f", log,
                                     "--health-address", f"127.0.0.1:{health}"], env=harness.clean_env())
            try:
                ok = False
                for _ in range(100):
                    r = subprocess.run([binary, "healthcheck", "--address", f"127.0.0.1:{health}"], capture_output=True)
                    if r.returncode == 0:
                        ok = True
                        break
                    if proc.poll() is not None:
                        break
                    time.sleep(0.1)
                self.assertTrue(ok, "the installed binary did not become healthy")
                sender = harness.UdpSender(udp)
                segs = [harness.make_segment("deb") for _ in range(10)]
                sender.send_all(harness.datagram(s) for s in segs)
                sender.close()
                self.assertFalse(xray.wait_for_ids([s["id"] for s in segs], timeout=10))
                self.assertEqual(xray.signature_failures, [])
            finally:
                proc.terminate()
                self.assertEqual(proc.wait(timeout=15), 0)


if __name__ == "__main__":
    harness.main()
