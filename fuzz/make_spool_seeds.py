#!/usr/bin/env python3
"""Writes fuzz/corpus/fuzz_spool from the on-disk format documented in src/pipeline/spool.h.

An encoder independent of spool.cc: spool_test reads corpus/fuzz_spool/three_records back and
expects its three batches, so the documentation and the code cannot drift apart unnoticed.
Input layout for fuzz_spool: byte 0 = flags (bit 0: the next 24 bytes are DIR/ack), then the chunk.
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "fuzz_spool")


def crc(b: bytes) -> int:
    return zlib.crc32(b) & 0xFFFFFFFF


def file_header(version=1) -> bytes:
    h = b"XRSPOOL1" + struct.pack("<I", version)
    return h + struct.pack("<I", crc(h))


def record(seq: int, ms: int, segments) -> bytes:
    payload = b"".join(struct.pack("<I", len(s)) + s for s in segments)
    rest = struct.pack("<IIHHQqII", crc(payload), len(payload), 1, 0, seq, ms, len(segments), 0)
    return struct.pack("<I", crc(rest)) + rest + payload


def ack(seq: int, version=1) -> bytes:
    b = b"XRAK" + struct.pack("<IQ", version, seq)
    return b + struct.pack("<II", crc(b), 0)


SEGS = [
    [b'{"trace_id":"1-5f84c7a0-1b3a6e0a8bc0ad1a2b6e2a1f","id":"6226467e3f845502","name":"hello",'
     b'"start_time":1602537376.1,"end_time":1602537376.2}'],
    [b'{"trace_id":"1-5f84c7a0-2b3a6e0a8bc0ad1a2b6e2a1f","id":"7226467e3f845502","name":"api",'
     b'"start_time":1602537377.1,"in_progress":true}',
     b'{"type":"subsegment","trace_id":"1-5f84c7a0-2b3a6e0a8bc0ad1a2b6e2a1f","id":"8226467e3f845502",'
     b'"parent_id":"7226467e3f845502","name":"db","start_time":1602537377.2,"end_time":1602537377.3}'],
    [b'{}'],
]


def main():
    os.makedirs(OUT, exist_ok=True)
    now = 1_765_000_000_000  # late 2025, in ms
    chunk = file_header() + b"".join(record(i + 1, now + i, s) for i, s in enumerate(SEGS))
    seeds = {
        "three_records": b"\x00" + chunk,
        "acked_first": b"\x01" + ack(1) + chunk,
        "torn_tail": b"\x00" + chunk[:-7],
        "payload_flip": b"\x00" + chunk[:70] + bytes([chunk[70] ^ 0x10]) + chunk[71:],
        "header_flip": b"\x00" + chunk[:20] + bytes([chunk[20] ^ 0x01]) + chunk[21:],
        "newer_version": b"\x00" + file_header(2) + chunk[16:],
        "empty_chunk": b"\x00" + file_header(),
        "zero_tail": b"\x00" + chunk + b"\x00" * 64,
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {OUT}")


if __name__ == "__main__":
    main()
