"""What the store benchmarks share (store_bench.py, store_read_bench.py): ports, /metrics, API
calls, percentiles, and `xrayd serve` started on free 127.0.0.1 ports and stopped again."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(health, name):
    text = urllib.request.urlopen(f"http://{health}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def call(api, path, body):
    req = urllib.request.Request(f"http://{api}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        out = json.loads(r.read())
    return time.perf_counter() - t0, out


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Serve:
    """`xrayd serve` with its store in WORK/data (emptied first unless keep_data), UDP, API and
    health on free ports; a context manager that stops it (SIGTERM, then kill after 30 s)."""

    def __init__(self, xrayd, work, keep_data=False, extra=(), memory_mb=512):
        self.udp, api, health = free_port(), free_port(), free_port()
        while len({self.udp, api, health}) < 3:  # a just-closed port can be offered again
            api, health = free_port(), free_port()
        self.api, self.health = f"127.0.0.1:{api}", f"127.0.0.1:{health}"
        self.data = os.path.join(work, "data")
        if not keep_data:
            shutil.rmtree(self.data, ignore_errors=True)
        log = open(os.path.join(work, "serve.log"), "a")
        self.proc = subprocess.Popen([xrayd, "serve", "--data-dir", self.data, "-b", f"127.0.0.1:{self.udp}",
                                      "-t", f"127.0.0.1:{self.udp}", "--listen", self.api, "--health-address",
                                      self.health, "-m", str(memory_mb), "-l", "warn", *extra],
                                     stdout=log, stderr=subprocess.STDOUT)
        self.wait_until_up(f"{xrayd} serve exited: see {work}/serve.log")

    def wait_until_up(self, if_exited):
        """Waits (up to 60 s) until the health port answers /metrics; exits with `if_exited` if the
        process ended first."""
        for _ in range(1200):
            try:
                metric(self.health, "xrayd_segments_received_total")
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit(if_exited)
                time.sleep(0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def drain(self, stall_seconds=60, tick=None):
        """Waits until every segment received over UDP is stored, failed or spilled, and the store's
        queue (which PutTraceSegments fills too) is empty. `tick` (if any) is called every 0.1 s meanwhile."""
        last, still = -1, 0
        while True:
            received = metric(self.health, "xrayd_segments_received_total")
            done = sum(metric(self.health, m) for m in ("xrayd_segments_sent_total", "xrayd_segments_failed_total",
                                                         "xrayd_segments_spilled_total"))
            # PutTraceSegments documents are not in the UDP counters: the store's queue must be empty too.
            if done >= received and metric(self.health, "xrayd_exporter_queued_segments") == 0:
                return
            still = still + 1 if done == last else 0
            if still > stall_seconds * 10:
                raise SystemExit("store stopped making progress")
            last = done
            if tick:
                tick()
            time.sleep(0.1)

    def disk_bytes(self):
        return sum(os.path.getsize(os.path.join(self.data, f)) for f in os.listdir(self.data))
