#!/usr/bin/env python3
"""The spool (issue 12) when its disk fails it:

  * disk full, without privilege: xrayd runs with RLIMIT_FSIZE at 1 MiB and SIGXFSZ ignored (set in
    the child before exec), so a spool write past 1 MiB fails with EFBIG as a write to a full disk
    fails with ENOSPC. Always runs.
  * disk full, for real: as root, the spool directory is also a 1 MiB tmpfs (`mount -t tmpfs`, else
    a loop-mounted 1 MiB ext2 image) and the same scenario runs again (ENOSPC from the kernel). If
    neither mount works the test says so in its output; the file-size variant above has run.
    In both, the back-end is down and ~6 MB of segments arrive (3 MB of memory, xrayd's minimum): the
    spool fills up. xrayd keeps running, counts the failure (xrayd_spool_errors_total), /readyz
    answers 503 naming the spool, the counters add up, and after recovery every segment is delivered
    exactly once or counted as dropped with its reason;
  * an unusable spool directory (the path is a regular file): a clear log line, /readyz 503 naming
    the spool, and the daemon keeps working from memory (everything delivered).

    python3 tests/e2e/test_pipeline_spool_disk.py --xrayd build/xrayd [-k name]
"""

import os
import subprocess
import time

import harness
import fault_backend as fb

RATE = 300
SMALL_DISK_KIB = 1024


def mount_small_fs(where: str, kib: int) -> str:
    """Mounts a `kib` KiB filesystem on `where`; returns how. Raises OSError if impossible."""
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k,mode=0755", "tmpfs", where],
                       capture_output=True, text=True)
    if r.returncode == 0:
        return "tmpfs"
    tmpfs_err = (r.stderr or r.stdout).strip()
    image = where.rstrip("/") + ".img"
    with open(image, "wb") as f:
        f.truncate(kib * 1024)
    mk = subprocess.run(["mkfs.ext2", "-q", "-F", image], capture_output=True, text=True)
    lo = subprocess.run(["mount", "-o", "loop", image, where], capture_output=True, text=True) if mk.returncode == 0 else mk
    if lo.returncode == 0:
        return "loop ext2"
    raise OSError(f"mount -t tmpfs: {tmpfs_err}; loop image: {(lo.stderr or lo.stdout).strip()}")


class PipelineSpoolDiskTest(fb.pipeline_test_case()):

    def test_disk_full(self):
        # Without privilege: every file xrayd writes is limited to 1 MiB.
        base = self.temp_dir()
        spool = os.path.join(base, "spool")
        os.mkdir(spool)
        self.disk_full_scenario(spool, "RLIMIT_FSIZE 1 MiB (EFBIG)",
                                preexec_fn=fb.limit_file_size(SMALL_DISK_KIB * 1024))
        # As root, a real small filesystem too (ENOSPC: the kernel's own "disk full").
        if os.geteuid() != 0:
            print("  [disk full on a real 1 MiB filesystem not run: mounting one needs root; "
                  "the RLIMIT_FSIZE variant above ran]")
            return
        base = self.temp_dir()
        spool = os.path.join(base, "spool")
        os.mkdir(spool)
        try:
            how = mount_small_fs(spool, SMALL_DISK_KIB)
        except OSError as e:
            print(f"  [disk full on a real 1 MiB filesystem not run: cannot mount one as root ({e}); "
                  "the RLIMIT_FSIZE variant above ran]")
            return
        self.addCleanup(lambda: subprocess.run(["umount", "-l", spool], capture_output=True))
        self.backend.stop()  # a fresh back-end: the checks compare what it accepted with what was sent
        self.fake = self.backend = fb.FaultBackend().start()
        self.disk_full_scenario(spool, f"a 1 MiB {how} (ENOSPC)")

    def disk_full_scenario(self, spool, how, preexec_fn=None):
        print(f"  [spool on {how}]")
        daemon = self.start_xrayd(spool_dir=spool, args=["--spool-max-mb", "64", "--retry-max-elapsed", "1s"],
                                  request_timeout=1, buffer_mb=3, preexec_fn=preexec_fn)
        self.backend.set_mode("5xx")
        # ~6 MB: more than the 3 MB memory queue holds, so the queue spills its oldest batches to the
        # spool whatever the retry policy does, and the spool's 1 MiB fills (random padding: ~1.3x
        # under the spool's zstd, so ~4.5 MB on disk).
        sender = fb.RateSender(daemon.udp_port, 600, size=2000, incompressible=True).start()
        time.sleep(5)
        ids = sender.stop()
        m = daemon.wait_metrics(lambda m: fb.account(m, "xray").received >= len(ids) and fb.spool_errors(m, "xray"),
                                10, interval=0.1)
        a = fb.assert_invariant(self, m, "xray")
        errors = fb.spool_errors(m, "xray")
        self.assertTrue(errors, f"~{2 * len(ids)} KB into 1 MiB of spool and no xrayd_spool_errors_total: {a.brief()}")
        self.assertTrue(daemon.alive(), "xrayd died on a full disk")
        status, body = self.readyz(daemon)
        self.assertEqual(status, 503, f"/readyz {status} {body!r} with the spool's disk full")
        self.assertIn("spool", body.lower(), f"/readyz does not name the spool: {body!r}")
        self.assertTrue(daemon.log_text().lower().count("spool"), "no log line about the spool")
        self.assertGreater(a.dropped_total, 0, f"6 MB into 3 MB of memory and 1 MiB of disk, nothing dropped: {a.brief()}")

        self.backend.set_mode("ok")
        t0 = time.monotonic()
        m = fb.wait_idle(daemon, "xray", 30,
                         extra=lambda m: fb.account(m, "xray").delivered + fb.account(m, "xray").dropped_total >= len(ids))
        self.print_timing("drain after recovery", time.monotonic() - t0)
        a = fb.assert_invariant(self, m, "xray")
        fb.assert_exactly_once_or_dropped(self, self.backend, a, ids)
        self.assertGreater(a.delivered, 0, a.brief())
        print(f"  [disk full ({how}): {a.brief()}; spool errors {fb.spool_errors(m, 'xray')}]")
        daemon.kill()

    def test_unusable_spool_directory(self):
        base = self.temp_dir()
        not_a_dir = os.path.join(base, "spool-is-a-file")
        with open(not_a_dir, "w") as f:
            f.write("not a directory\n")
        daemon = self.start_xrayd(spool_dir=not_a_dir, ready="/healthz")
        time.sleep(0.5)
        self.assertTrue(daemon.alive(), f"xrayd exited with an unusable spool directory:\n{daemon.log_tail()}")
        status, body = self.readyz(daemon)
        self.assertEqual(status, 503, f"/readyz {status} {body!r} with an unusable spool")
        self.assertIn("spool", body.lower(), f"/readyz does not name the spool: {body!r}")
        self.assertIn("spool", daemon.log_text().lower(), "no log line about the spool")
        m = daemon.metrics()
        self.assertTrue(fb.spool_errors(m), "no xrayd_spool_errors_total for an unusable spool directory")
        # It keeps running from memory.
        sender = fb.RateSender(daemon.udp_port, RATE, size=500).start()
        time.sleep(2)
        ids = sender.stop()
        m = fb.wait_idle(daemon, "xray", 15,
                         extra=lambda m: fb.account(m, "xray").delivered + fb.account(m, "xray").dropped_total >= len(ids))
        a = fb.assert_invariant(self, m, "xray")
        fb.assert_exactly_once_or_dropped(self, self.backend, a, ids)
        self.assertEqual(a.delivered, len(ids), a.brief())


if __name__ == "__main__":
    harness.main()
