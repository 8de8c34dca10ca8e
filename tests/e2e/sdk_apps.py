"""Running the traced example services for the SDK end-to-end tests: the C++ `hello`
(examples/hello), its Node.js twin express_hello.js (Express + aws-xray-sdk-express) and its Python
twin flask_hello.py (Flask + aws_xray_sdk's XRayMiddleware).

    main()  strips --hello PATH (or HELLO_BIN, default build/examples/hello/hello) from the command
            line, then runs harness.main() (which takes --xrayd).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Optional

import harness

HELLO_BIN: Optional[str] = None
EXPRESS_HELLO = os.path.join(harness.HERE, "express_hello.js")
FLASK_HELLO = os.path.join(harness.HERE, "flask_hello.py")
TRACE_HEADER = "X-Amzn-Trace-Id"


def main():
    global HELLO_BIN
    args, rest, i = sys.argv[1:], [sys.argv[0]], 0
    while i < len(args):
        if args[i] == "--hello" and i + 1 < len(args):
            HELLO_BIN = args[i + 1]
            i += 2
            continue
        if args[i].startswith("--hello="):
            HELLO_BIN = args[i].split("=", 1)[1]
        else:
            rest.append(args[i])
        i += 1
    HELLO_BIN = os.path.abspath(HELLO_BIN or os.environ.get("HELLO_BIN") or
                                os.path.join(harness.REPO, "build", "examples", "hello", "hello"))
    if not os.access(HELLO_BIN, os.X_OK):
        print(f"FAIL: hello binary not found: {HELLO_BIN} (pass --hello PATH or set HELLO_BIN)", file=sys.stderr)
        sys.exit(2)
    sys.argv = rest
    harness.main()


def node_command() -> list:
    """[node, express_hello.js]; raises AssertionError (the test fails) when node or the npm
    packages are missing."""
    node = shutil.which("node")
    if node is None:
        raise AssertionError("node is not on PATH: this test needs node 20+ (and `npm ci` in tests/e2e)")
    for pkg in ("express", "aws-xray-sdk-express", "aws-xray-sdk-core"):
        if not os.path.isfile(os.path.join(harness.HERE, "node_modules", pkg, "package.json")):
            raise AssertionError(f"tests/e2e/node_modules/{pkg} is missing: run `npm ci` in tests/e2e "
                                 f"(scripts/setup.sh does it)")
    return [node, EXPRESS_HELLO]


def python_command() -> list:
    """[this python3, flask_hello.py]; raises AssertionError (the test fails) when this interpreter
    lacks aws_xray_sdk 2.x, flask or requests (flask_hello.py's http.client fallback gives another
    trace shape: see there)."""
    probe = ("import aws_xray_sdk.ext.flask.middleware, flask, requests\n"
             "from aws_xray_sdk.version import VERSION\nprint(VERSION)\n")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    if p.returncode != 0 or not p.stdout.strip().startswith("2."):
        raise AssertionError(f"{sys.executable} lacks aws_xray_sdk 2.x, flask or requests "
                             f"(pip install aws-xray-sdk flask requests): "
                             f"{(p.stdout + p.stderr).strip()[-500:]}")
    return [sys.executable, FLASK_HELLO]


def base_env(port: int, service: str, daemon_address: str) -> dict:
    """The environment the services read: no inherited AWS_XRAY_* or sampling settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_XRAY_") and k not in ("XRAY_SAMPLING_RULES_FILE", "XRAY_CENTRALIZED_SAMPLING",
                                                          "XRAY_SERVICE_NAME", "PORT")}
    env.update(PORT=str(port), XRAY_SERVICE_NAME=service, AWS_XRAY_DAEMON_ADDRESS=daemon_address,
               AWS_XRAY_CONTEXT_MISSING="LOG_ERROR")
    return env


class App:
    """One service process on a loopback port, its output in a log file."""

    def __init__(self, command: list, env: dict, port: int, log_path: str):
        self.port = port
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=harness.HERE)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"{command[-1]} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise AssertionError(f"{command[-1]} not listening on {port} within 15 s:\n{self.log()}")
                time.sleep(0.05)

    def get(self, path: str, headers: Optional[dict] = None):
        """GET → (status, body text, response headers)."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers or {})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), r.headers

    def stop(self) -> int:
        """SIGTERM; the exit code (killed after 10 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""
