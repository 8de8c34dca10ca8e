"""Drives the real AWS X-Ray SDK for Python (aws_xray_sdk) against the daemon at the address given
as argv[1] (host:port, xrayd's UDP port; else AWS_XRAY_DAEMON_ADDRESS). Runs under any interpreter with the SDK: the current
2.x from PyPI and Debian 12's python3-aws-xray-sdk 0.95 both work, so it uses only the API the two
share (begin/end segment and subsegment, put_annotation, put_metadata, put_http_meta,
add_exception, set_user, flags, the capture decorator).

It records every datagram the SDK sends (through a UDPEmitter subclass that keeps the exact bytes
before sending them) and prints one JSON object on stdout:
    {"sdk_version": "...", "python": "...", "datagrams": ["{\"format\": ...}\n{...}", ...]}
"""

import json
import os
import sys
import time
import traceback

from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter

try:
    from aws_xray_sdk.version import VERSION as SDK_VERSION
except ImportError:  # 0.95 has no version module
    try:
        import importlib.metadata
        SDK_VERSION = importlib.metadata.version("aws-xray-sdk")
    except Exception:
        SDK_VERSION = "0.x"

TRICKY = ('quote " backslash \\ slash / newline \n tab \t cr \r nul \x00 bell \x07 del \x7f latin é ü ß '
          'cjk 漢字 emoji 😀🚀 ls \u2028 ps \u2029 bom \ufeff end')


class RecordingEmitter(UDPEmitter):
    def __init__(self, daemon_address):
        super().__init__(daemon_address)
        self.datagrams = []

    def _send_data(self, data):
        self.datagrams.append(data)
        super()._send_data(data)
        time.sleep(0.002)  # a small gap, as a real service would have between datagrams


class CardDeclined(Exception):
    pass


def main():
    address = sys.argv[1] if len(sys.argv) > 1 else os.environ["AWS_XRAY_DAEMON_ADDRESS"]
    emitter = RecordingEmitter(address)
    kwargs = dict(sampling=False, context_missing="LOG_ERROR", daemon_address=address, emitter=emitter,
                  service="e2e-python")
    xray_recorder.configure(**kwargs)
    if not hasattr(xray_recorder, "streaming_threshold"):
        xray_recorder._max_subsegments = 30  # 0.95's name for the streaming threshold (its default)
    else:
        xray_recorder.streaming_threshold = 30
    prefix = "e2e-py%s" % SDK_VERSION.split(".")[0]

    # 1. Annotations (all value types), metadata (default and custom namespaces), user, http.
    seg = xray_recorder.begin_segment(prefix + "-annotated")
    seg.put_annotation("customer_id", "c-12345")
    seg.put_annotation("order_total", 99.5)
    seg.put_annotation("retry_count", 3)
    seg.put_annotation("is_premium", True)
    seg.put_annotation("tricky", TRICKY)
    seg.put_metadata("request", {"items": [1, 2, 3], "nested": {"a": {"b": "deep"}}, "nothing": None})
    seg.put_metadata("config", {"region": "us-west-2", "flags": ["a", "b"]}, "my-namespace")
    seg.put_metadata("tricky", TRICKY)
    seg.set_user("alice@example.com")
    seg.put_http_meta("method", "POST")
    seg.put_http_meta("url", "https://shop.example.com/checkout?x=1&y=%20")
    seg.put_http_meta("user_agent", "e2e-agent/1.0")
    seg.put_http_meta("client_ip", "203.0.113.9")
    seg.put_http_meta("status", 201)
    seg.put_http_meta("content_length", 42)
    xray_recorder.end_segment()

    # 2. Nested subsegments.
    xray_recorder.begin_segment(prefix + "-nested")
    s1 = xray_recorder.begin_subsegment("level-1")
    s1.put_annotation("depth", 1)
    s2 = xray_recorder.begin_subsegment("level-2", "remote")
    s2.put_metadata("depth", {"level": 2})
    s2.put_http_meta("method", "GET")
    s2.put_http_meta("url", "http://inventory.internal/items/7")
    s2.put_http_meta("status", 200)
    s3 = xray_recorder.begin_subsegment("level-3")
    s3.put_annotation("leaf", True)
    xray_recorder.end_subsegment()
    xray_recorder.end_subsegment()
    xray_recorder.begin_subsegment("level-2-sibling")
    xray_recorder.end_subsegment()
    xray_recorder.end_subsegment()
    xray_recorder.end_segment()

    # 3. Errors and causes: the capture decorator records a raised exception with its stack;
    # add_exception by hand; fault/error/throttle flags; an http 500.
    @xray_recorder.capture("charge-card")
    def charge():
        raise CardDeclined("card declined: " + TRICKY)

    seg = xray_recorder.begin_segment(prefix + "-errors")
    try:
        charge()
    except CardDeclined:
        pass
    sub = xray_recorder.begin_subsegment("manual-exception")
    try:
        {}["missing"]
    except KeyError as e:
        sub.add_exception(e, traceback.extract_stack())
    xray_recorder.end_subsegment()
    sub = xray_recorder.begin_subsegment("throttled-call", "remote")
    sub.put_http_meta("status", 429)
    sub.add_throttle_flag()
    xray_recorder.end_subsegment()
    sub = xray_recorder.begin_subsegment("server-error", "remote")
    sub.put_http_meta("status", 500)
    xray_recorder.end_subsegment()
    seg.add_fault_flag()
    seg.put_http_meta("status", 500)
    xray_recorder.end_segment()

    # 4. Streaming: more subsegments than the streaming threshold (30) → closed ones are sent alone.
    xray_recorder.begin_segment(prefix + "-streamed")
    for i in range(45):
        sub = xray_recorder.begin_subsegment("stream-%d" % i)
        sub.put_annotation("index", i)
        xray_recorder.end_subsegment()
    xray_recorder.end_segment()

    # 5. A large document (~40 KB of metadata).
    seg = xray_recorder.begin_segment(prefix + "-large")
    seg.put_metadata("blob", "L" * (40 * 1024))
    xray_recorder.end_segment()

    # 6. Many small segments (more than one 50-document batch), some with unicode names.
    for i in range(60):
        name = prefix + ("-bulk-ünïcødé-%d" % i if i % 5 == 0 else "-bulk-%d" % i)
        seg = xray_recorder.begin_segment(name)
        seg.put_annotation("i", i)
        xray_recorder.begin_subsegment("work")
        xray_recorder.end_subsegment()
        xray_recorder.end_segment()

    print(json.dumps({"sdk_version": SDK_VERSION, "python": sys.version.split()[0], "datagrams": emitter.datagrams}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
