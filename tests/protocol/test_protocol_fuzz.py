"""Fuzzing the request path: any bytes through read_request_header + decode_request either
decode or raise ProtocolError, quickly, without allocating beyond the frame."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proto_values import fields_of, strategy

from edplog.protocol import SUPPORTED, ProtocolError, decode_request, read_request_header
from edplog.protocol.framing import encode_request
from edplog.protocol.registry import APIS

CASES = [(k, v) for k, (lo, hi) in sorted(SUPPORTED.items()) for v in range(lo, hi + 1)]


def run_request_path(frame: bytes) -> None:
    mv = memoryview(frame)
    try:
        hdr = read_request_header(mv)
        if hdr.body_offset >= 0 and (hdr.api_key, hdr.api_version) in _DECODABLE:
            decode_request(hdr.api_key, hdr.api_version, mv, hdr.body_offset)
    except ProtocolError:
        pass


_DECODABLE = {
    (k, v) for k, api in APIS.items() for v in range(api.min_version, api.max_version + 1)
}


@st.composite
def valid_frames(draw: st.DrawFn) -> bytes:
    api_key, version = draw(st.sampled_from(CASES))
    body = draw(strategy(fields_of(api_key, "request"), version))
    return encode_request(api_key, version, 1, draw(st.none() | st.text(max_size=4)), body)[4:]


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(valid_frames()))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "big"]))
        pos = draw(st.integers(0, max(len(frame) - 1, 0)))
        if op == "flip" and frame:
            frame[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del frame[pos:]
        elif op == "insert":
            frame[pos:pos] = draw(st.binary(min_size=1, max_size=6))
        else:  # a huge claimed length (int32, int16 or varint)
            frame[pos:pos] = draw(st.sampled_from([b"\x7f\xff\xff\xff", b"\x7f\xff",
                                                   b"\xff\xff\xff\xff\x0f"]))  # fmt: skip
    return bytes(frame)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_frames())
def test_mutated_frames_decode_or_raise_protocol_error(frame: bytes) -> None:
    run_request_path(frame)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(CASES), st.binary(max_size=64))
def test_random_bodies_after_a_valid_header_decode_or_raise(case: tuple, tail: bytes) -> None:
    api_key, version = case
    run_request_path(struct.pack(">hhih", api_key, version, 1, -1) + tail)


# What decoding a frame of a few dozen bytes may allocate, whatever lengths it claims (the
# decoders use a few KiB; a length taken on trust would be 32 KiB to 16 GiB here).
CLAIM_PEAK_BYTES = 16 * 1024


@pytest.mark.parametrize(("api_key", "version"), CASES)
def test_huge_claimed_lengths_are_rejected_without_allocation(api_key: int, version: int) -> None:
    valid = encode_request(api_key, version, 1, None, {})[4:]
    hdr = read_request_header(memoryview(valid))
    # Decoders are generated on first use: build this one before measuring.
    decode_request(api_key, version, memoryview(valid), hdr.body_offset)
    for claim in (b"\x7f\xff\xff\xff", b"\xff\xff\xff\xff\x07", b"\x7f\xff"):
        frame = valid[: hdr.body_offset] + claim * 3
        tracemalloc.start()
        try:
            try:
                decode_request(api_key, version, memoryview(frame), hdr.body_offset)
            except ProtocolError:
                pass  # the expected answer; any other exception fails the test
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < CLAIM_PEAK_BYTES, (claim, peak)
