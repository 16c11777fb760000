"""RecordBatch v2: round trips across codecs and record shapes, kafka-python as an independent
oracle in both directions, CRC-32C vectors, and append_batches of malformed batches."""

from __future__ import annotations

import os

import crc32c as crc32c_pkg
import pytest
from conftest import snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords

from edplog import Log, _native
from edplog.errors import CorruptRecordError
from edplog.records import build_batch, decode_batches

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
KAFKA_CODEC = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

maybe_bytes = st.one_of(st.none(), st.binary(max_size=64))
headers = st.lists(
    st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=16))), max_size=3
)
record = st.tuples(
    maybe_bytes,  # key
    st.one_of(maybe_bytes, st.binary(min_size=1000, max_size=5000)),  # value, some large
    headers,
    st.integers(min_value=0, max_value=2**41),  # timestamp
)
records = st.lists(record, min_size=1, max_size=40)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def as_tuples(recs):
    return [(k, v, tuple((hk, hv) for hk, hv in h), ts) for k, v, h, ts in recs]


@FAST
@given(recs=records, codec=st.sampled_from(CODECS))
def test_batch_round_trip_every_codec_and_record_shape(recs, codec):
    """build_batch then decode_batches gives back every key, value, header and timestamp."""
    raw = build_batch(
        [{"key": k, "value": v, "headers": h, "timestamp_ms": ts} for k, v, h, ts in recs],
        compression=codec,
    )
    (batch,) = decode_batches(raw)
    assert batch.compression == codec
    assert batch.record_count == len(recs)
    got = [(r.key, r.value, r.headers, r.timestamp_ms) for r in batch.records]
    assert got == as_tuples(recs)
    assert [r.offset for r in batch.records] == list(range(len(recs)))
    assert batch.max_timestamp_ms == max(ts for *_, ts in recs)


@FAST
@given(recs=records, codec=st.sampled_from(CODECS))
def test_our_batches_decode_with_kafka_python(recs, codec):
    """kafka-python's record module reads our batches: CRC valid, same records."""
    raw = build_batch(
        [{"key": k, "value": v, "headers": h, "timestamp_ms": ts} for k, v, h, ts in recs],
        compression=codec,
    )
    theirs = MemoryRecords(raw)
    batch = theirs.next_batch()
    assert batch.validate_crc()
    assert batch.compression_type == KAFKA_CODEC[codec]
    got = [(r.key, r.value, tuple(r.headers), r.timestamp) for r in batch]
    assert got == [(k, v, tuple(h), ts) for k, v, h, ts in as_tuples(recs)]
    assert theirs.next_batch() is None


@FAST
@given(recs=records, codec=st.sampled_from(CODECS))
def test_kafka_python_batches_decode_with_ours(recs, codec):
    """Batches built by kafka-python decode with edplog's decoder, and a Log stores them."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=KAFKA_CODEC[codec],
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 24,
    )
    for i, (k, v, h, ts) in enumerate(recs):
        builder.append(i, timestamp=ts, key=k, value=v, headers=h)
    raw = bytes(builder.build())
    (batch,) = decode_batches(raw)
    got = [(r.key, r.value, r.headers, r.timestamp_ms) for r in batch.records]
    assert got == as_tuples(recs)


def test_kafka_python_batches_append_to_a_log_and_read_back(tmp_path):
    """Several kafka-python batches in one buffer: offsets assigned, stored as sent."""
    buf = b""
    for codec in CODECS:
        builder = DefaultRecordBatchBuilder(2, KAFKA_CODEC[codec], False, -1, -1, -1, 1 << 20)
        for i in range(5):
            value = b"%s-%d-" % (codec.encode(), i) + b"z" * 300  # compressible
            builder.append(i, timestamp=1000 + i, key=None, value=value, headers=[])
        buf += bytes(builder.build())
    with Log(tmp_path / "log") as log:
        log.append(b"first")
        assert log.append_batches(buf) == (1, 25)
        got = log.read(1)
        want = [b"%s-%d-" % (c.encode(), i) + b"z" * 300 for c in CODECS for i in range(5)]
        assert [r.value for r in got] == want
        stored = log.read_batches(1, 1 << 20)
        assert [b.compression for b in decode_batches(stored)] == CODECS


# ---- CRC-32C --------------------------------------------------------------------------------

VECTORS = [
    (b"", 0x00000000),
    (b"a", 0xC1D04330),
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (bytes([0xFF]) * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
]


@pytest.mark.parametrize(("data", "crc"), VECTORS)
def test_crc32c_known_vectors_hardware_and_portable(data, crc):
    """The published CRC-32C check values, from both implementations."""
    assert _native.crc32c(data) == crc
    assert _native.crc32c_portable(data) == crc


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=5000), split=st.integers(min_value=0, max_value=5000))
def test_crc32c_hardware_portable_and_pypi_agree_incrementally(data, split):
    """Hardware, portable and the crc32c package agree, also when fed in two pieces."""
    want = crc32c_pkg.crc32c(data)
    assert _native.crc32c(data) == want
    assert _native.crc32c_portable(data) == want
    split = min(split, len(data))
    assert _native.crc32c(data[split:], _native.crc32c(data[:split])) == want
    assert _native.crc32c_portable(data[split:], _native.crc32c_portable(data[:split])) == want


# ---- malformed batches ----------------------------------------------------------------------


def good_batch(n: int = 3, codec: str = "none") -> bytearray:
    return bytearray(build_batch([(b"k", b"value-%d" % i) for i in range(n)], compression=codec))


def _bad_crc():
    b = good_batch()
    b[-1] ^= 1
    return b


def _bad_length_long():
    b = good_batch()
    b[8:12] = (int.from_bytes(b[8:12], "big") + 10).to_bytes(4, "big")
    return b


def _bad_length_short():
    b = good_batch()
    b[8:12] = (int.from_bytes(b[8:12], "big") - 3).to_bytes(4, "big")
    return b


def _tiny_length():
    b = good_batch()
    b[8:12] = (5).to_bytes(4, "big")
    return b


def _magic(value):
    def make():
        b = good_batch()
        b[16] = value
        return b

    return make


def _count(delta):
    def make():
        b = good_batch()
        # record count rewritten and the CRC fixed up: only the structure check can see it
        b[57:61] = (3 + delta).to_bytes(4, "big", signed=True)
        b[17:21] = _native.crc32c(bytes(b[21:])).to_bytes(4, "big")
        return b

    return make


def _last_delta():
    b = good_batch()
    b[23:27] = (7).to_bytes(4, "big")
    b[17:21] = _native.crc32c(bytes(b[21:])).to_bytes(4, "big")
    return b


def _codec7():
    b = good_batch()
    b[22] |= 7
    b[17:21] = _native.crc32c(bytes(b[21:])).to_bytes(4, "big")
    return b


def _second_bad():
    return good_batch() + _bad_crc()


def _trailing():
    return good_batch() + b"\x00\x01\x02"


MALFORMED = {
    "bad-crc": _bad_crc,
    "length-too-long": _bad_length_long,
    "length-too-short": _bad_length_short,
    "length-below-header": _tiny_length,
    "magic-0": _magic(0),
    "magic-1": _magic(1),
    "magic-3": _magic(3),
    "count-plus-one": _count(1),
    "count-minus-one": _count(-1),
    "count-negative": _count(-10),
    "last-offset-delta-mismatch": _last_delta,
    "unknown-codec": _codec7,
    "truncated-header": lambda: good_batch()[:40],
    "truncated-records": lambda: good_batch()[:-5],
    "truncated-compressed": lambda: good_batch(20, "zstd")[:-4],
    "second-batch-bad": _second_bad,
    "trailing-bytes": _trailing,
    "empty": lambda: bytearray(),
    "garbage": lambda: bytearray(os.urandom(300)),
    "zeros": lambda: bytearray(200),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_append_batches_rejects_malformed_batch_and_leaves_log_unchanged(tmp_path, name):
    """A malformed buffer raises CorruptRecordError; the log end offset, the bytes on disk
    and the readable records are unchanged, and the log still appends."""
    path = tmp_path / "log"
    log = Log(path)
    try:
        log.append_batches(good_batch(4))
        log.append(b"tail")
        log.flush()
        before_files = snapshot(str(path))
        before = [(r.offset, r.value) for r in log.read(0)]
        end = log.log_end_offset
        with pytest.raises(CorruptRecordError) as info:
            log.append_batches(MALFORMED[name]())
        assert str(info.value)
        assert log.log_end_offset == end
        assert snapshot(str(path)) == before_files
        assert [(r.offset, r.value) for r in log.read(0)] == before
        assert log.append_batches(good_batch(2)) == (end, end + 1)
    finally:
        log.close()
    with Log(path) as log:
        assert log.log_end_offset == end + 2
        assert log.recovery_report == []


def test_append_batches_rejects_malformed_compressed_records(tmp_path):
    """A compressed batch whose CRC is right but whose payload does not decompress to its
    records is refused (or, if accepted, never served as garbage)."""
    b = good_batch(5, "gzip")
    b[70:74] = b"\xff\xff\xff\xff"
    b[17:21] = _native.crc32c(bytes(b[21:])).to_bytes(4, "big")
    with Log(tmp_path / "log") as log:
        try:
            log.append_batches(b)
        except CorruptRecordError:
            assert log.log_end_offset == 0
            return
        with pytest.raises(CorruptRecordError):
            log.read(0)


def _with_records_section(batch: bytes, section: bytes) -> bytes:
    """The batch with its records section replaced and its length and CRC made valid again:
    what a buggy or hostile producer sends."""
    out = bytearray(batch[:61] + section)
    out[8:12] = (len(out) - 12).to_bytes(4, "big")
    out[17:21] = _native.crc32c(bytes(out[21:])).to_bytes(4, "big")
    return bytes(out)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_append_refuses_garbage_inside_a_compressed_batch(tmp_path, codec):
    """A compressed batch whose CRC is right but whose records are not: refused with
    CorruptRecordError before anything is written, for every codec; the log stays usable."""
    from edplog.codecs import codec_id, compress

    good = build_batch([(b"k", b"v" * 100)] * 3, compression=codec)
    bad_records = compress(codec_id(codec), b"\x00" * 200)  # well-compressed, not records
    bad = _with_records_section(good, bad_records)
    with Log(tmp_path / "log") as log:
        with pytest.raises(CorruptRecordError):
            log.append_batches(bad)
        assert log.log_end_offset == 0
        assert log.append_batches(good) == (0, 2)
        assert [r.value for r in log.read(0)] == [b"v" * 100] * 3
