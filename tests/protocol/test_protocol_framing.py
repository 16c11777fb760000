"""Frames and headers: request header v1/v2, response header v0/v1, ApiVersions' fixed v0
header, unknown API keys, truncation, FileRegion parts and zero-copy records."""

from __future__ import annotations

import struct
import tempfile

import proto_oracle as oracle
import pytest
from proto_values import fields_of, plain, populated

from edplog.errors import EdplogError
from edplog.protocol import (
    API_KEYS,
    API_NAMES,
    FLEXIBLE_FROM,
    REJECTED,
    SUPPORTED,
    FileRegion,
    ProtocolError,
    RequestHeader,
    UnsupportedVersionError,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    read_request_header,
)

EXPECTED_SUPPORTED = {
    18: (0, 4), 3: (0, 13), 0: (0, 13), 1: (0, 18), 2: (0, 11), 8: (0, 10), 9: (0, 10),
    10: (0, 6), 11: (0, 9), 12: (0, 4), 13: (0, 5), 14: (0, 5), 15: (0, 6), 16: (0, 5),
    19: (0, 7), 20: (0, 6), 21: (0, 2), 22: (0, 4), 23: (0, 4), 32: (0, 4), 33: (0, 2),
    34: (1, 2), 35: (1, 4), 37: (0, 3), 42: (0, 2), 44: (0, 1), 47: (0, 0), 60: (0, 2),
    48: (0, 1), 49: (0, 1), 50: (0, 0), 51: (0, 0), 68: (0, 1), 69: (0, 1),
    43: (0, 2), 45: (0, 1), 46: (0, 0), 29: (0, 3), 30: (0, 3), 31: (0, 3),
    17: (0, 1), 36: (0, 2),
}  # fmt: skip


def _join(parts: list) -> bytes:
    out = b""
    for p in parts:
        if isinstance(p, FileRegion):
            p.file.seek(p.pos)
            out += p.file.read(p.length)
        else:
            out += bytes(p)
    return out


def test_supported_ranges_are_exactly_the_advertised_ones() -> None:
    assert SUPPORTED == EXPECTED_SUPPORTED
    assert REJECTED == {0: range(0, 3), 1: range(0, 4)}
    assert API_KEYS["Produce"] == 0 and API_NAMES[60] == "DescribeCluster"
    assert API_KEYS["SaslHandshake"] == 17 and API_KEYS["SaslAuthenticate"] == 36
    assert FLEXIBLE_FROM[0] == 9 and FLEXIBLE_FROM[18] == 3 and 17 not in FLEXIBLE_FROM


@pytest.mark.parametrize(
    ("api_key", "version"),
    [(3, 4), (3, 9), (3, 12), (0, 7), (0, 9), (18, 0), (18, 3), (18, 4), (60, 0)],
)
def test_request_frame_matches_oracle_and_header_parses(api_key: int, version: int) -> None:
    body = populated(fields_of(api_key, "request"), version)
    frame = encode_request(api_key, version, 4242, "client-é", body)
    cls = oracle.message_class(api_key, "request")
    obj = oracle._to_obj(cls._struct, body, version, cls)
    obj.with_header(correlation_id=4242, client_id="client-é")
    assert frame == bytes(obj.encode(version=version, header=True, framed=True))
    assert struct.unpack(">i", frame[:4])[0] == len(frame) - 4
    mv = memoryview(frame)[4:]
    hdr = read_request_header(mv)
    assert hdr[:4] == (api_key, version, 4242, "client-é")
    flexible_tag_bytes = 1 if version >= FLEXIBLE_FROM.get(api_key, 99) else 0
    assert hdr.body_offset == 10 + len("client-é".encode()) + flexible_tag_bytes
    assert plain(decode_request(api_key, version, mv, hdr.body_offset)) == plain(
        decode_request(api_key, version, memoryview(frame[4:]), hdr.body_offset)
    )


def test_null_client_id_and_header_tagged_fields_are_skipped() -> None:
    frame = bytearray(encode_request(18, 3, 1, None, {"client_software_name": "x"}))
    hdr = read_request_header(memoryview(frame)[4:])
    assert hdr == RequestHeader(18, 3, 1, None, 11)
    # a header v2 carrying one unknown tagged field (tag 5, 2 bytes)
    raw = struct.pack(">hhih", 18, 3, 9, 1) + b"c" + b"\x01\x05\x02ab" + b"\x02x\x02y\x00"
    hdr = read_request_header(memoryview(raw))
    assert hdr.body_offset == 11 + 5
    body = decode_request(18, 3, memoryview(raw), hdr.body_offset)
    assert body == {"client_software_name": "x", "client_software_version": "y"}


def test_unknown_api_key_returns_header_without_body_offset() -> None:
    raw = struct.pack(">hhih", 999, 7, 77, 3) + b"abc" + b"junk"
    assert read_request_header(memoryview(raw)) == RequestHeader(999, 7, 77, "abc", -1)
    with pytest.raises(UnsupportedVersionError) as info:
        decode_request(999, 7, memoryview(raw), 13)
    assert info.value.kafka_code == 35


def test_version_beyond_supported_still_gives_header_but_no_decoder() -> None:
    raw = struct.pack(">hhih", 3, 14, 5, -1) + b"\x00\x01\x00"
    hdr = read_request_header(memoryview(raw))
    assert hdr[:4] == (3, 14, 5, None)
    with pytest.raises(UnsupportedVersionError):
        decode_request(3, 14, memoryview(raw), max(hdr.body_offset, 0))


def test_every_truncation_of_a_request_raises_protocol_error() -> None:
    body = populated(fields_of(1, "request"), 12)
    frame = encode_request(1, 12, 3, "c", body)[4:]
    hdr = read_request_header(memoryview(frame))
    decode_request(1, 12, memoryview(frame), hdr.body_offset)
    for cut in range(len(frame)):
        mv = memoryview(frame[:cut])
        with pytest.raises(ProtocolError):
            h = read_request_header(mv)
            decode_request(1, 12, mv, h.body_offset)
    assert issubclass(ProtocolError, EdplogError)


def test_fields_missing_from_a_version_are_present_with_defaults() -> None:
    frame = encode_request(11, 0, 1, "c", {"group_id": "g", "session_timeout_ms": 10})[4:]
    body = decode_request(11, 0, memoryview(frame), read_request_header(frame).body_offset)
    assert body["rebalance_timeout_ms"] == -1
    assert body["group_instance_id"] is None
    frame = encode_request(0, 3, 1, "c", {"acks": 1})[4:]
    body = decode_request(0, 3, memoryview(frame), read_request_header(frame).body_offset)
    assert body == {"transactional_id": None, "acks": 1, "timeout_ms": 0, "topic_data": []}


def test_produce_records_are_zero_copy_slices_of_the_frame() -> None:
    records = bytes(range(200))
    body = {"acks": -1, "topic_data": [{"name": "t", "partition_data": [
        {"index": 0, "records": records}, {"index": 1, "records": None}]}]}  # fmt: skip
    for version in (3, 9):
        frame = encode_request(0, version, 1, "c", body)[4:]
        mv = memoryview(frame)
        got = decode_request(0, version, mv, read_request_header(mv).body_offset)
        parts = got["topic_data"][0]["partition_data"]
        rec = parts[0]["records"]
        assert isinstance(rec, memoryview) and rec.obj is frame and bytes(rec) == records
        assert parts[1]["records"] is None


@pytest.mark.parametrize("version", [3, 4])
def test_api_versions_v3_v4_response_header_is_v0(version: int) -> None:
    body = {"error_code": 0, "api_keys": [{"api_key": 0, "min_version": 0, "max_version": 9}],
            "throttle_time_ms": 0}  # fmt: skip
    parts, total = encode_response(18, version, 99, body)
    data = _join(parts)
    assert len(data) == total and struct.unpack(">ii", data[:8]) == (total - 4, 99)
    assert data[8:] == oracle.encode_body(18, "response", version, body)
    assert decode_response(18, version, memoryview(data)[4:]) == (99, {
        **body, "supported_features": [], "finalized_features_epoch": -1,
        "finalized_features": [], "zk_migration_ready": False})  # fmt: skip


def test_api_versions_v0_unsupported_reply_is_kafkas_exact_bytes() -> None:
    body = {"error_code": 35, "api_keys": [{"api_key": 18, "min_version": 0, "max_version": 4}]}
    parts, total = encode_response(18, 0, 7, body)
    expected = bytes.fromhex("0000001000000007002300000001001200000004")
    assert _join(parts) == expected and total == len(expected)


def test_flexible_response_header_carries_empty_tag_section() -> None:
    parts, total = encode_response(3, 12, 5, {"cluster_id": "c"})
    data = _join(parts)
    assert data[4:9] == b"\x00\x00\x00\x05\x00"
    assert data[9:] == oracle.encode_body(3, "response", 12, {"cluster_id": "c"})
    parts, total = encode_response(3, 8, 5, {"cluster_id": "c"})
    assert _join(parts)[8:] == oracle.encode_body(3, "response", 8, {"cluster_id": "c"})


@pytest.mark.parametrize("version", [4, 11, 12])
def test_fetch_response_emits_file_regions_as_separate_parts(version: int) -> None:
    with tempfile.TemporaryFile() as f:
        f.write(b"x" * 100 + bytes(range(256)) * 4)
        f.flush()
        region = FileRegion(f, 100, 1024)
        partitions = [
            {"partition_index": i, "high_watermark": 10, "records": [b"ab", region, b"cd"]}
            for i in range(3)
        ]
        body = {"responses": [{"topic": "t", "partitions": partitions}]}
        parts, total = encode_response(1, version, 3, body)
        assert sum(1 for p in parts if isinstance(p, FileRegion)) == 3
        assert not any(len(p) == 0 for p in parts if not isinstance(p, FileRegion))
        # between two regions the bytes are joined into one part
        assert len(parts) == 7
        data = _join(parts)
        assert len(data) == total
        f.seek(100)
        flat = b"ab" + f.read(1024) + b"cd"
        for p in partitions:
            p["records"] = flat
        parts2, total2 = encode_response(1, version, 3, body)
        assert _join(parts2) == data and total2 == total
        cid, decoded = decode_response(1, version, memoryview(data)[4:])
        assert cid == 3
        assert bytes(decoded["responses"][0]["partitions"][2]["records"]) == flat
        assert data[4 + 4 + (version >= 12) :] == oracle.encode_body(1, "response", version, body)


def test_unencodable_value_raises_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        encode_response(12, 0, 1, {"error_code": "not a number"})


def test_every_codec_compiles() -> None:
    from edplog.protocol.registry import REQUEST_DECODERS, RESPONSE_ENCODERS, build_all

    build_all()
    assert (0, 9) in REQUEST_DECODERS and (1, 12) in RESPONSE_ENCODERS
    with pytest.raises(KeyError):
        REQUEST_DECODERS[(3, 14)]
