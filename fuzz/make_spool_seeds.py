#!/usr/bin/env python3
"""Writes fuzz/corpus/fuzz_spool from the on-disk format documented in src/pipeline/spool.h.

An encoder independent of spool.cc: spool_test reads corpus/fuzz_spool/three_records back and
expects its three batches, so the documentation and the code cannot drift apart unnoticed.
Input layout for fuzz_spool: byte 0 = flags (bit 0: the next 24 bytes are DIR/ack), then the chunk.
"""
import os
import struct
import subprocess
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "fuzz_spool")


def crc(b: bytes) -> int:
    return zlib.crc32(b) & 0xFFFFFFFF


def file_header(version=1) -> bytes:
    h = b"XRSPOOL1" + struct.pack("<I", version)
    return h + struct.pack("<I", crc(h))


def record(seq: int, ms: int, segments) -> bytes:
    """A version-1 record (uncompressed), as xrayd before format version 2 wrote them."""
    payload = b"".join(struct.pack("<I", len(s)) + s for s in segments)
    rest = struct.pack("<IIHHQqII", crc(payload), len(payload), 1, 0, seq, ms, len(segments), 0)
    return struct.pack("<I", crc(rest)) + rest + payload


def zstd(raw: bytes) -> bytes:
    """One zstd frame from the zstd command-line tool (reading a file, so the frame declares its
    content size, as the format requires)."""
    with tempfile.NamedTemporaryFile() as f:
        f.write(raw)
        f.flush()
        return subprocess.run(["zstd", "-1", "-q", "-c", "--no-check", f.name],
                              check=True, capture_output=True).stdout


def record_v2(seq: int, ms: int, segments, compress=True, stored=None) -> bytes:
    """A version-2 record: flags bit 0 = zstd frame, raw_len = the payload's size before it."""
    raw = b"".join(struct.pack("<I", len(s)) + s for s in segments)
    if stored is None:
        stored = zstd(raw) if compress else raw
    flags = 1 if compress else 0
    rest = struct.pack("<IIHHQqII", crc(stored), len(stored), 2, flags, seq, ms, len(segments), len(raw))
    return struct.pack("<I", crc(rest)) + rest + stored


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

BATCH = [(b'{"trace_id":"1-5f84c7a0-%08x8bc0ad1a2b6e2a1f","id":"%016x","name":"svc-%d",'
          b'"start_time":1602537376.1,"end_time":1602537376.2,"http":{"request":{"method":"GET",'
          b'"url":"https://example.com/api/items"},"response":{"status":200}}}') % (i, i, i)
         for i in range(20)]


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
        "newer_version": b"\x00" + file_header(3) + chunk[16:],
        "empty_chunk": b"\x00" + file_header(),
        "zero_tail": b"\x00" + chunk + b"\x00" * 64,
    }
    # Format version 2: a compressed batch, a record compression would not shrink (stored as is),
    # then a tiny one; and the same damaged: a flipped bit in the frame (payload CRC fails), a
    # frame whose CRC matches but does not decompress, a raw_len the frame does not declare.
    raw0 = b"".join(struct.pack("<I", len(s)) + s for s in BATCH)
    v2 = file_header(2) + record_v2(1, now, BATCH) + record_v2(2, now + 1, SEGS[1], compress=False) + \
        record_v2(3, now + 2, SEGS[2], compress=False)
    frame = zstd(raw0)
    bad = frame[:8] + bytes(b ^ 0x5A for b in frame[8:])
    r1 = record_v2(1, now, BATCH)
    at = 16 + 40 + 20
    seeds["compressed_records"] = b"\x00" + v2
    seeds["compressed_flip"] = b"\x00" + v2[:at] + bytes([v2[at] ^ 0x04]) + v2[at + 1:]
    seeds["compressed_bad_frame"] = b"\x00" + file_header(2) + record_v2(1, now, BATCH, stored=bad) + v2[16 + len(r1):]
    wrong_len = BATCH + [b"{}"]  # raw_len of 21 segments over the frame of 20
    seeds["compressed_wrong_raw_len"] = b"\x00" + file_header(2) + record_v2(1, now, wrong_len, stored=frame) + \
        v2[16 + len(r1):]
    seeds["compressed_acked_first"] = b"\x01" + ack(1) + v2
    seeds["version1_then_version2"] = b"\x00" + chunk + record_v2(4, now + 3, BATCH)
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {OUT}")


if __name__ == "__main__":
    main()
