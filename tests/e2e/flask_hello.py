#!/usr/bin/env python3
"""The hello example (examples/hello/main.cc) as a Python user would write it, following the
project's reference article: Flask with the official X-Ray middleware (aws_xray_sdk's
XRayMiddleware) and the SDK's patch of `requests` (or of http.client when requests is not
installed) for the outgoing call. test_sdk_cross.py runs it next to the C++ hello and compares what
both emit.

Without `requests` the call goes through http.client, patched as `httplib`. That patch propagates the
trace header only when a subsegment is already open around the call (aws_xray_sdk 2.15's
ext/httplib/patch.py reads current_subsegment() before opening its own), and records send, response
and read as three "remote" subsegments: /downstream then starts a trace of its own. The comparison
needs `requests` for that reason (sdk_apps.python_command checks it).

  GET /            calls GET /downstream on itself (traced: a "remote" subsegment plus the trace
                   header), then answers "Hello, X-Ray! Trace ID: <id>" and logs the same line.
  GET /downstream  answers "downstream ok"; its segment is named <service>-downstream, as in hello.

Environment, as hello: PORT (default 5000), XRAY_SERVICE_NAME (default "hello"; the SDK lets
AWS_XRAY_TRACING_NAME win), AWS_XRAY_DAEMON_ADDRESS and AWS_XRAY_CONTEXT_MISSING (read by the SDK
itself). Besides: XRAY_CENTRALIZED_SAMPLING=false gives the recorder the SDK's LocalSampler (its
built-in local rule, 1 request/s + 5 %, as hello's default), so it never polls the daemon's TCP
address for rules. Listens on 127.0.0.1 with Flask's threaded server (the request to / waits for
/downstream on another thread); prints "listening <port>" on stdout; SIGTERM/SIGINT stop it with 0.
"""

import logging
import os
import signal
import sys
import time

from aws_xray_sdk.core import patch, xray_recorder
from aws_xray_sdk.core.sampling.local.sampler import LocalSampler
from aws_xray_sdk.ext.flask.middleware import XRayMiddleware

try:
    import requests  # noqa: F401  (patched below)
    HTTP_CLIENT = "requests"
except ImportError:
    HTTP_CLIENT = "httplib"

port = int(os.environ.get("PORT") or 5000)
service = os.environ.get("XRAY_SERVICE_NAME") or "hello"
downstream_url = f"http://127.0.0.1:{port}/downstream"

config = {"service": service}
if os.environ.get("XRAY_CENTRALIZED_SAMPLING") == "false":
    # The SDK's default sampler polls the daemon for centralized rules; the local one does not.
    config["sampler"] = LocalSampler()
xray_recorder.configure(**config)
patch((HTTP_CLIENT,))

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s",
                    datefmt="%Y-%m-%dT%H:%M:%SZ")
logging.Formatter.converter = time.gmtime
log = logging.getLogger("flask_hello")

from flask import Flask  # noqa: E402

app = Flask(__name__)
XRayMiddleware(app, xray_recorder)


def get_downstream():
    """GET /downstream through the patched client; raises on failure."""
    if HTTP_CLIENT == "requests":
        import requests
        r = requests.get(downstream_url, timeout=2)
        r.raise_for_status()
        return r.text
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/downstream")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


@app.route("/")
def hello():
    segment = xray_recorder.current_segment()
    trace_id = segment.trace_id if segment else "No segment"
    try:
        get_downstream()
    except Exception as e:  # answer anyway, as hello does
        log.warning("downstream call failed: %s", e)
    line = f"Hello, X-Ray! Trace ID: {trace_id}"
    log.info("%s", line)
    return line + "\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.route("/downstream")
def downstream():
    # The middleware names every segment after the recorder's service; this one gets its own name,
    # as in hello and express_hello.js.
    segment = xray_recorder.current_segment()
    if segment:
        segment.name = f"{service}-downstream"
    return "downstream ok\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


def stop(signum, frame):
    log.info("%s: stopping", signal.Signals(signum).name)
    sys.exit(0)  # unwinds Flask's serve_forever in the main thread; request threads are daemons


if __name__ == "__main__":
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    log.info('flask_hello (service "%s", outgoing calls via %s) listening on 127.0.0.1:%d', service, HTTP_CLIENT, port)
    print(f"listening {port}", flush=True)
    app.run(host="127.0.0.1", port=port, threaded=True)
