"""validate_records: every record of every batch walked, compressed batches decompressed piece
by piece under a bound. Bad records are built here byte by byte (a pure-Python record encoder
is the oracle) and wrapped in batches whose CRC is right, so only the record walk can see them;
decompression bombs run in a subprocess whose peak RSS is measured."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib

import crc32c as crc32c_pkg
import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatchBuilder

from edplog import _native, codecs
from edplog.errors import CorruptRecordError, UnsupportedCodecError
from edplog.records import build_batch, decode_batches, scan_batches

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
COMPRESSED = CODECS[1:]
CODEC_ID = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
MiB = 1 << 20


# ---- a pure-Python RecordBatch v2 writer, free to write what a producer never would ----------


def varint(n: int) -> bytes:
    u = ((n << 1) ^ (n >> 63)) & (2**64 - 1)
    out = bytearray()
    while u >= 0x80:
        out.append(u & 0x7F | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


def record(
    offset_delta: int,
    key: bytes | None = b"k",
    value: bytes | None = b"v",
    headers: list[tuple[bytes | None, bytes | None]] = (),
    header_count: int | None = None,
    extra: bytes = b"",
    length_delta: int = 0,
    ts_delta: int = 0,
) -> bytes:
    """One record; header_count, extra and length_delta make it lie about itself."""

    def field(b: bytes | None) -> bytes:
        return varint(-1) if b is None else varint(len(b)) + b

    body = b"\x00" + varint(ts_delta) + varint(offset_delta) + field(key) + field(value)
    body += varint(len(headers) if header_count is None else header_count)
    for hk, hv in headers:
        body += field(hk) + field(hv)
    body += extra
    return varint(len(body) + length_delta) + body


def section(n: int, **kw) -> bytes:
    return b"".join(record(i, key=b"key-%d" % i, value=b"value-%d" % i, **kw) for i in range(n))


def batch(
    records: bytes,
    count: int,
    codec: str = "none",
    last_delta: int | None = None,
    base_offset: int = 0,
    payload: bytes | None = None,
) -> bytes:
    """A batch around a records section (compressed with codec unless payload is given) with
    a correct CRC, computed by the crc32c package."""
    if payload is None:
        payload = codecs.compress(CODEC_ID[codec], records) if codec != "none" else records
    last_delta = count - 1 if last_delta is None else last_delta
    after_crc = struct.pack(
        ">hiqqqhii", CODEC_ID[codec], last_delta, 1000, 1000, -1, -1, -1, count
    ) + bytes(payload)
    head = struct.pack(">qiib", base_offset, 49 + len(payload), -1, 2)
    return head + struct.pack(">I", crc32c_pkg.crc32c(after_crc)) + after_crc


def refused(data, match: str | None, strict: bool = True, **kw) -> CorruptRecordError:
    """validate_records refuses data with a message matching match. When the batch is
    compressed, the structure and CRC check alone (scan_batches, the produce path so far)
    lets it through: only the walk sees inside."""
    if data[22] & 0x07:
        scan_batches(data, strict=strict)
    with pytest.raises(CorruptRecordError, match=match) as info:
        _native.validate_records(data, strict=strict, **kw)
    return info.value


# ---- valid batches --------------------------------------------------------------------------

maybe_bytes = st.one_of(st.none(), st.binary(max_size=40))
headers = st.lists(
    st.tuples(st.text(max_size=6), st.one_of(st.none(), st.binary(max_size=12))), max_size=3
)
records = st.lists(
    st.tuples(
        maybe_bytes, st.one_of(maybe_bytes, st.binary(min_size=1000, max_size=70_000)), headers
    ),
    min_size=1,
    max_size=30,
)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(recs=records, codec=st.sampled_from(CODECS))
def test_built_batches_of_every_codec_validate_and_round_trip(recs, codec):
    """build_batch output passes, strict and not, and still decodes to the same records; the
    uncompressed size reported is the records section's."""
    raw = build_batch([{"key": k, "value": v, "headers": h} for k, v, h in recs], codec)
    (decoded,) = decode_batches(raw)
    assert [(r.key, r.value, list(r.headers)) for r in decoded.records] == [
        (k, v, h) for k, v, h in recs
    ]
    plain = raw[61:] if codec == "none" else codecs.decompress(CODEC_ID[codec], raw[61:])
    assert _native.validate_records(raw) == (1, len(recs), len(plain))
    assert _native.validate_records(raw * 2, strict=False) == (2, 2 * len(recs), 2 * len(plain))


@FAST
@given(recs=records, codec=st.sampled_from(CODECS))
def test_kafka_python_batches_of_every_codec_validate(recs, codec):
    """Batches compressed by an independent producer (kafka-python's own codecs) pass."""
    builder = DefaultRecordBatchBuilder(2, CODEC_ID[codec], False, -1, -1, -1, 1 << 24)
    for i, (k, v, h) in enumerate(recs):
        builder.append(i, timestamp=1000 + i, key=k, value=v, headers=h)
    raw = bytes(builder.build())
    assert _native.validate_records(raw)[:2] == (1, len(recs))


@pytest.mark.parametrize("codec", CODECS)
def test_records_spanning_many_pieces_validate(codec):
    """A section of several MiB, with records larger than a 256 KiB decompression piece and
    records straddling piece boundaries, is walked whole."""
    sizes = [10, 300_000, 7, 1_000_000, 1, 262_000, 50_000] * 3
    rng = np.random.default_rng(7)
    recs = [
        (b"k%d" % i, rng.integers(0, 4, n, dtype=np.uint8).tobytes()) for i, n in enumerate(sizes)
    ]
    raw = build_batch(recs, codec)
    batches, count, size = _native.validate_records(raw)
    assert (batches, count) == (1, len(sizes))
    assert size > sum(sizes)


def test_empty_buffer_and_empty_uncompressed_batch_validate():
    assert _native.validate_records(b"") == (0, 0, 0)
    empty = batch(b"", 0, last_delta=4)
    assert _native.validate_records(empty, strict=False) == (1, 0, 0)


def test_multi_frame_zstd_validates_and_decodes_every_frame():
    """Concatenated zstd frames are one stream (RFC 8878): the walker and the decoder agree."""
    one, two = section(3), b"".join(record(i, b"key-%d" % i, b"w") for i in range(3, 5))
    payload = zstandard.ZstdCompressor().compress(one) + zstandard.ZstdCompressor().compress(two)
    raw = batch(one + two, 5, "zstd", payload=payload)
    assert _native.validate_records(raw) == (1, 5, len(one + two))
    assert [r.offset for r in decode_batches(raw)[0].records] == [0, 1, 2, 3, 4]


# ---- garbage inside compressed batches, with a correct CRC ----------------------------------


@pytest.mark.parametrize("codec", COMPRESSED)
def test_corrupt_record_inside_compressed_batch_is_refused(codec):
    """A record whose key length runs past it, compressed properly and CRC'd properly."""
    bad = section(2) + record(2, key=b"kk", length_delta=0)[:-8] + b"\x7f" * 8
    err = refused(batch(bad, 3, codec), "record 2 of 3")
    assert err.offset == 0 and err.position == 0


@pytest.mark.parametrize("codec", COMPRESSED)
def test_random_bytes_compressed_with_valid_crc_are_refused(codec):
    garbage = np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    refused(batch(garbage, 10, codec), "record")


@pytest.mark.parametrize("codec", COMPRESSED)
def test_undecodable_compressed_stream_with_valid_crc_is_refused(codec):
    """The second half of the compressed bytes is noise (the producer CRC'd the damage)."""
    good = codecs.compress(CODEC_ID[codec], section(50))
    half = len(good) // 2
    noise = np.random.default_rng(2).integers(0, 256, len(good) - half, dtype=np.uint8)
    refused(batch(b"", 50, codec, payload=good[:half] + noise.tobytes()), None)


@pytest.mark.parametrize("codec", COMPRESSED)
@pytest.mark.parametrize("cut", [1, 3, 9, 100])
def test_truncated_compressed_stream_is_refused(codec, cut):
    whole = codecs.compress(CODEC_ID[codec], section(40))
    refused(batch(b"", 40, codec, payload=whole[:-cut]), None)


def test_zstd_frame_missing_only_its_checksum_is_refused():
    """Every record decodes, but the frame never ends: a consumer's libzstd would fail."""
    plain = section(20)
    whole = zstandard.ZstdCompressor(write_checksum=True).compress(plain)
    for cut in (1, 4):
        refused(batch(b"", 20, "zstd", payload=whole[:-cut]), "truncated")


@pytest.mark.parametrize("codec", COMPRESSED)
def test_bytes_after_the_compressed_stream_are_refused(codec):
    whole = codecs.compress(CODEC_ID[codec], section(5))
    # xerial snappy framing has no end marker: the junk reads as a block's length
    match = "snappy block" if codec == "snappy" else "follow the end|after the end"
    refused(batch(b"", 5, codec, payload=whole + b"\x00junk\x01"), match)


@pytest.mark.parametrize("codec", COMPRESSED)
def test_empty_compressed_section_is_refused(codec):
    refused(batch(b"", 0, codec, payload=b"", last_delta=0), None, strict=False)


def test_unknown_codec_is_refused():
    raw = bytearray(batch(section(1), 1))
    raw[22] |= 0x06  # codec 6
    raw[17:21] = crc32c_pkg.crc32c(bytes(raw[21:])).to_bytes(4, "big")
    with pytest.raises(UnsupportedCodecError):
        _native.validate_records(bytes(raw))


# ---- record rules, uncompressed and compressed ----------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_record_length_past_its_batch_is_refused(codec):
    bad = section(2) + record(2, length_delta=40)
    refused(batch(bad, 3, codec), "record 2 of 3")


def test_record_length_past_batch_names_position_in_the_buffer():
    first = batch(section(3), 3)
    second = batch(section(1) + record(1, length_delta=40), 2, base_offset=3)
    err = refused(first + second, "batch at offset 3")
    assert err.offset == 3
    assert err.position == len(first) + 61 + len(section(1))


@pytest.mark.parametrize("codec", CODECS)
def test_record_shorter_than_minimum_is_refused(codec):
    refused(batch(section(1) + b"\x0a" + bytes(5), 2, codec), "below the minimum 6")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("count", [2, 4])
def test_wrong_record_count_is_refused(codec, count):
    """The header counts one record more or less than the section holds (lastOffsetDelta
    agrees with the header, so only the walk can tell)."""
    refused(batch(section(3), count, codec), "records|follow the last")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(
    ("rec", "match"),
    [
        (record(0, header_count=-1), "headerCount"),
        (record(0, header_count=3, headers=[(b"a", b"b")]), "header 1"),
        (record(0, headers=[(None, b"v")]), "header 0 has a bad key length"),
        (record(0, headers=[(b"h", b"v")], header_count=1, length_delta=-1), "header 0"),
        (record(0, key=b"k" * 20, length_delta=-15), "keyLength"),
        (record(0, extra=b"\x00\x00"), "fields end 2 bytes before"),
        (record(0, value=None, extra=b"\x03"), "fields end 1 bytes before"),
    ],
)
def test_malformed_record_fields_are_refused(codec, rec, match):
    refused(batch(rec, 1, codec), match)


def test_uncompressed_record_fields_are_checked_beyond_what_the_scan_reads():
    """The structure check reads each record's length and deltas only; the walk reads the
    rest, which a consumer would otherwise stall on."""
    body = b"\x00\x00\x00" + varint(40) + b"k" * 20 + varint(1) + b"v" + varint(0)
    raw = batch(varint(len(body)) + body, 1)  # keyLength 40 in a record of 26 bytes
    scan_batches(raw)
    with pytest.raises(CorruptRecordError, match="keyLength"):
        _native.validate_records(raw)


def test_varint_longer_than_five_bytes_is_refused():
    """A 6-byte encoding of offsetDelta 0: Kafka's readers refuse it, so does the walk."""
    body = b"\x00\x00" + b"\x80\x80\x80\x80\x80\x00" + b"\x01\x01\x00"
    refused(batch(varint(len(body)) + body, 1), "offsetDelta is malformed")


@pytest.mark.parametrize("codec", CODECS)
def test_strict_offset_deltas_must_count_from_zero(codec):
    gappy = record(0) + record(2) + record(3)
    refused(batch(gappy, 3, codec, last_delta=2), "offsetDelta 2, expected 1")
    # compaction leaves gaps: accepted when not strict, within lastOffsetDelta
    assert _native.validate_records(batch(gappy, 3, codec, last_delta=5), strict=False)[1] == 3


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("deltas", [[0, 2, 2], [0, 3, 1], [1, 6]])
def test_offset_deltas_must_ascend_within_last_offset_delta(codec, deltas):
    recs = b"".join(record(d) for d in deltas)
    refused(batch(recs, len(deltas), codec, last_delta=5), "offsetDelta", strict=False)


# ---- the bound on decompressed bytes --------------------------------------------------------


@pytest.mark.parametrize("codec", COMPRESSED)
def test_batch_expanding_past_max_uncompressed_bytes_is_refused(codec):
    plain = section(5000)
    raw = batch(plain, 5000, codec)
    assert _native.validate_records(raw, max_uncompressed_bytes=len(plain))[2] == len(plain)
    refused(raw, "allowed uncompressed", max_uncompressed_bytes=len(plain) - 1)
    refused(raw, "allowed uncompressed", max_uncompressed_bytes=len(plain) // 3)


def test_uncompressed_batches_are_not_bound_by_max_uncompressed_bytes():
    """The bound is for what decompression would make; stored bytes are their own bound."""
    raw = batch(section(100), 100)
    assert _native.validate_records(raw, max_uncompressed_bytes=10)[1] == 100


# ---- decompression bombs, in a subprocess whose peak RSS is measured -------------------------

CHILD = r"""
import json, resource, sys
from edplog import _native, codecs
from edplog.errors import CorruptRecordError

def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])

# Guard the machine: an allocation 512 MiB past what the process has already fails.
limit = (status_kib("VmSize:") + 512 * 1024) * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
results = []
for path, bound, whole in json.loads(sys.argv[1]):
    data = open(path, "rb").read()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak RSS (VmHWM) restarts from the RSS now
    before = status_kib("VmRSS:")
    try:
        if whole:  # the control: decompress the section in one go, as a reader does
            codecs.decompress(data[22] & 7, data[61:])
        else:
            _native.validate_records(data, max_uncompressed_bytes=bound)
        error = None
    except CorruptRecordError as exc:
        error = str(exc)
    results.append({"error": error, "rss_growth_kib": status_kib("VmHWM:") - before})
print(json.dumps(results))
"""


def run_bombs(tmp_path, cases: list[tuple[bytes, int]], control: int = -1) -> list[dict]:
    """Validate each (batch, bound) in one fresh interpreter: how far its peak RSS rose over
    the RSS it had when the call began. The case numbered control is also decompressed whole
    (appended last to the results), to show that the measurement sees such a thing."""
    args = []
    for i, (data, bound) in enumerate(cases):
        path = tmp_path / f"bomb-{i}"
        path.write_bytes(data)
        args.append((str(path), bound, False))
    if control >= 0:
        args.append((args[control][0], 0, True))
    # Warm-up first: the libraries' own first-use allocations are not the bomb's.
    warm = tmp_path / "warm"
    warm.write_bytes(b"".join(build_batch([(b"k", b"v")], c) for c in CODECS))
    args.insert(0, (str(warm), _native.DEFAULT_MAX_UNCOMPRESSED_BYTES, False))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    results = json.loads(out.stdout)
    assert results[0]["error"] is None
    return results[1:]


def zstd_rle_frame(total_bytes: int, byte: int = 0) -> bytes:
    """A zstd frame (RFC 8878) of RLE blocks: 4 bytes per 128 KiB of output."""
    block = 128 * 1024
    n = total_bytes // block
    frame = struct.pack("<I", 0xFD2FB528) + bytes([0x00, 0x38])  # no FCS; window 128 KiB
    rle = struct.pack("<I", (block << 3) | 2)[:3] + bytes([byte])
    last = struct.pack("<I", (block << 3) | 3)[:3] + bytes([byte])
    return frame + rle * (n - 1) + last


def test_zstd_rle_frame_is_a_real_bomb():
    """The bomb below is valid zstd: the library expands it (checked on its first MiB)."""
    frame = zstd_rle_frame(2 << 30)
    assert len(frame) < 65 * 1024
    reader = zstandard.ZstdDecompressor().stream_reader(frame)
    assert reader.read(MiB) == bytes(MiB)
    small = zstd_rle_frame(4 * 128 * 1024, 7)
    assert zstandard.ZstdDecompressor().stream_reader(small).read() == bytes([7]) * 4 * 128 * 1024


def tiny_records(n: int) -> bytes:
    """n valid tiny records (null key, empty value, no header; 7 to 10 bytes) with offset
    deltas 0, 1, 2, ..., built as arrays: 80 MiB of them in well under a second."""
    zigzag = np.arange(n, dtype=np.uint64) * 2
    parts = []
    for width, lo, hi in ((1, 0, 64), (2, 64, 8192), (3, 8192, 1 << 20), (4, 1 << 20, 1 << 27)):
        z = zigzag[lo:hi]
        if not len(z):
            break
        rows = np.zeros((len(z), 6 + width), dtype=np.uint8)
        rows[:, 0] = 2 * (5 + width)  # length; attributes and timestampDelta stay 0
        for j in range(width):
            rows[:, 3 + j] = (z >> np.uint64(7 * j)) & np.uint64(0x7F) | (
                np.uint64(0x80) if j < width - 1 else np.uint64(0)
            )
        rows[:, 3 + width] = 1  # keyLength -1; valueLength and headerCount stay 0
        parts.append(rows.tobytes())
    return b"".join(parts)


def test_tiny_records_are_valid_records():
    recs = tiny_records(9000)
    raw = batch(recs, 9000, "zstd")
    assert _native.validate_records(raw) == (1, 9000, len(recs))
    got = decode_batches(raw)[0].records
    assert [r.offset for r in got] == list(range(9000))
    assert {(r.key, r.value, r.headers) for r in got} == {(None, b"", ())}


def test_decompression_bombs_are_refused_in_bounded_memory(tmp_path):
    """64 KiB of zstd expanding to 2 GiB of zeros, with the default bound and with none;
    zstd of 80 MiB of valid tiny records (past the 64 MiB default; no content size in the
    frame header, so only the walk can tell); gzip of 256 MiB of zeros. Each is refused and
    none raises the peak RSS by 64 MiB."""
    zeros = zstd_rle_frame(2 << 30)
    recs = tiny_records(80 * MiB // 10)
    count = 80 * MiB // 10
    valid_bomb = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(recs)
    assert len(recs) > 78 * MiB and len(valid_bomb) < 40 * MiB
    del recs
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    chunk = bytes(MiB)
    gzip_zeros = b"".join(z.compress(chunk) for _ in range(256)) + z.flush()
    assert len(gzip_zeros) < 2 * MiB
    cases = [
        (batch(b"", 2**31 - 1, "zstd", payload=zeros), _native.DEFAULT_MAX_UNCOMPRESSED_BYTES),
        (batch(b"", 2**31 - 1, "zstd", payload=zeros), 1 << 40),
        (batch(b"", count, "zstd", payload=valid_bomb), _native.DEFAULT_MAX_UNCOMPRESSED_BYTES),
        (batch(b"", 2**31 - 1, "gzip", payload=gzip_zeros), 1 << 40),
    ]
    *results, whole = run_bombs(tmp_path, cases, control=2)
    assert "allowed uncompressed" in results[0]["error"]
    assert "below the minimum 6" in results[1]["error"]  # zeros are no records: first piece
    assert "allowed uncompressed" in results[2]["error"]
    assert "below the minimum 6" in results[3]["error"]
    for r in results:
        assert r["rss_growth_kib"] < 64 * 1024, results
    assert whole["error"] is None and whole["rss_growth_kib"] > 78 * 1024, whole


def snappy_declaring(n: int, framed: bool) -> bytes:
    """A raw snappy block whose preamble declares n bytes, followed by a few literals."""
    pre = bytearray()
    while n >= 0x80:
        pre.append(n & 0x7F | 0x80)
        n >>= 7
    pre.append(n)
    block = bytes(pre) + b"\x0cabcd"  # a 4-byte literal
    if not framed:
        return block
    return b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1) + struct.pack(">i", len(block)) + block


@pytest.mark.parametrize("framed", [True, False])
def test_snappy_block_declaring_4_gib_is_refused_before_allocation(tmp_path, framed):
    """Refused for passing the bound and, with no bound, for declaring more than its bytes
    can hold: in both cases before the 4 GiB are allocated (peak RSS barely moves)."""
    block = snappy_declaring(2**32 - 1, framed)
    raw = batch(b"", 1, "snappy", payload=block)
    results = run_bombs(tmp_path, [(raw, _native.DEFAULT_MAX_UNCOMPRESSED_BYTES), (raw, 1 << 40)])
    assert "allowed uncompressed" in results[0]["error"]
    assert "more than it can hold" in results[1]["error"]
    for r in results:
        assert r["rss_growth_kib"] < 16 * 1024, results
