"""The chart's rendered command lines, run for real on loopback: the DaemonSet's daemon answers its
liveness/readiness probes and stops cleanly on SIGTERM; in mode local, a segment sent to the daemon over UDP
reaches the `xrayd serve` Deployment and comes back from its X-Ray API.

Only what a cluster provides is substituted, and each substitution is named where it is made: free ports
instead of the pod's own (rendered through the chart's values), 127.0.0.1 instead of the server Service's
cluster DNS name, a temporary directory instead of the volume."""
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.request

import yaml

import deploy_support as ds
from deploy_support import by_kind, render

ARTICLE_VALUES = ("tests", "deploy", "x-ray-values.yaml")


_handed_out: set[int] = set()


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1 and 0.0.0.0 (the daemon binds both protocols),
    never one this run already handed out (a just-closed port is often the next one offered)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("0.0.0.0", 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind(("0.0.0.0", port))
            except OSError:
                continue
            if port in _handed_out:
                continue
            _handed_out.add(port)
            return port
    raise AssertionError("no free port")


def http(method, url, body=None, timeout=2):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Process:
    """One xrayd we started; stop() sends SIGTERM to that pid only."""

    def __init__(self, test, args, name):
        self.test, self.name = test, name
        self.workdir = ds.temp_dir(f"xrayd-live-{name}-")
        self.log_path = os.path.join(self.workdir, "output.log")
        self.log = open(self.log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen([ds.xrayd_binary(), *args], stdout=self.log, stderr=subprocess.STDOUT,
                                     env=ds.clean_env(), cwd=self.workdir)
        test.addCleanup(self.kill)

    def output(self):
        self.log.flush()
        with open(self.log_path, encoding="utf-8") as f:
            return f.read()

    def wait_ready(self, health_address, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.test.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if http("GET", f"http://{health_address}/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.test.fail(f"{self.name} not ready on {health_address} after {timeout} s:\n{self.output()}")

    def stop(self, timeout):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.test.fail(f"{self.name} did not stop within {timeout} s of SIGTERM:\n{self.output()}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def daemonset_args(kinds, workdir, endpoint=None):
    """The DaemonSet container's args, with -c pointing at the rendered ConfigMap's file written to workdir."""
    (daemonset,) = kinds["DaemonSet"].values()
    container = daemonset["spec"]["template"]["spec"]["containers"][0]
    args = list(container["args"])
    (cm,) = kinds["ConfigMap"].values()
    cfg_text = cm["data"]["cfg.yaml"]
    if endpoint is not None:
        cfg = yaml.safe_load(cfg_text)
        cfg["Endpoint"] = endpoint
        cfg_text = yaml.safe_dump(cfg)
    path = os.path.join(workdir, "cfg.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(cfg_text)
    args[args.index("-c") + 1] = path
    return args, container


def segment(name):
    now = time.time()
    trace_id = f"1-{int(now):08x}-{secrets.token_hex(12)}"
    doc = {"trace_id": trace_id, "id": secrets.token_hex(8), "name": name, "start_time": now - 0.05, "end_time": now}
    return trace_id, b'{"format": "json", "version": 1}\n' + json.dumps(doc).encode()


class LiveDaemonSet(unittest.TestCase):
    def test_probes_answer_and_sigterm_stops_it(self):
        udp, health = free_port(), free_port()
        _, docs = render("-f", ds.src(*ARTICLE_VALUES), "--set", f"xray.containerPort={udp}",
                         "--set", f"health.port={health}")
        kinds = by_kind(docs)
        args, container = daemonset_args(kinds, ds.temp_dir("xrayd-live-cfg-"))
        daemon = Process(self, args, "daemonset")
        daemon.wait_ready(f"127.0.0.1:{health}")
        for probe in ("livenessProbe", "readinessProbe"):
            status, _ = http("GET", f"http://127.0.0.1:{health}{container[probe]['httpGet']['path']}")
            self.assertEqual(status, 200, probe)
        status, metrics = http("GET", f"http://127.0.0.1:{health}/metrics")
        self.assertEqual(status, 200)
        self.assertIn("xrayd_segments_received_total", metrics)
        grace = kinds["DaemonSet"]["aws-xray"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        self.assertEqual(daemon.stop(timeout=grace), 0, daemon.output())


class LiveLocalMode(unittest.TestCase):
    def test_segment_flows_from_daemon_to_server(self):
        api, server_health, server_udp, daemon_udp, daemon_health = (free_port() for _ in range(5))
        _, docs = render("-f", ds.src(*ARTICLE_VALUES), "--set", "mode=local", "--set", f"server.port={api}",
                         "--set", f"health.port={server_health}", "--set", f"xray.containerPort={daemon_udp}")
        kinds = by_kind(docs)

        # The server, as its Deployment runs it; its pod's own loopback :2000 becomes a free port here.
        server_container = kinds["Deployment"]["aws-xray-server"]["spec"]["template"]["spec"]["containers"][0]
        server_args = list(server_container["args"])
        server_args[server_args.index("--data-dir") + 1] = ds.temp_dir("xrayd-live-data-")
        server_args += ["-b", f"127.0.0.1:{server_udp}", "-t", f"127.0.0.1:{server_udp}"]
        server = Process(self, server_args, "server")
        server.wait_ready(f"127.0.0.1:{server_health}")

        # The node daemon, as the DaemonSet runs it; the server's Service name becomes 127.0.0.1.
        cfg = yaml.safe_load(kinds["ConfigMap"]["aws-xray-config"]["data"]["cfg.yaml"])
        self.assertEqual(cfg["Endpoint"], f"http://aws-xray-server.ops-monitoring-ns.svc.cluster.local:{api}")
        args, _ = daemonset_args(kinds, ds.temp_dir("xrayd-live-cfg-"), endpoint=f"http://127.0.0.1:{api}")
        args += ["--health-address", f"127.0.0.1:{daemon_health}"]  # the server pod has the chart's port here
        daemon = Process(self, args, "daemon")
        daemon.wait_ready(f"127.0.0.1:{daemon_health}")

        # An SDK's segment, to AWS_XRAY_DAEMON_ADDRESS.
        trace_id, datagram = segment("hello-app")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(datagram, ("127.0.0.1", daemon_udp))
        deadline, found = time.monotonic() + 20, False
        while time.monotonic() < deadline and not found:
            now = time.time()
            status, body = http("POST", f"http://127.0.0.1:{api}/TraceSummaries",
                                {"StartTime": now - 600, "EndTime": now + 60})
            self.assertEqual(status, 200, body)
            found = trace_id in [t["Id"] for t in json.loads(body)["TraceSummaries"]]
            if not found:
                time.sleep(0.2)
        self.assertTrue(found, f"trace {trace_id} never reached the server\ndaemon:\n{daemon.output()}\n"
                               f"server:\n{server.output()}")
        status, body = http("POST", f"http://127.0.0.1:{api}/Traces", {"TraceIds": [trace_id]})
        self.assertEqual(status, 200, body)
        (trace,) = json.loads(body)["Traces"]
        self.assertEqual(json.loads(trace["Segments"][0]["Document"])["name"], "hello-app")

        self.assertEqual(daemon.stop(timeout=30), 0, daemon.output())
        self.assertEqual(server.stop(timeout=30), 0, server.output())


if __name__ == "__main__":
    ds.main()
