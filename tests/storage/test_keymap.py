"""OffsetMap and filter_batches: compaction's key map and batch rewrite in C. A Python model
(dict of latest offsets) says what must survive; the rewritten batches are read back with
kafka-python, an independent decoder that checks every CRC."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.memory_records import MemoryRecords

from edplog import _native
from edplog.errors import CorruptRecordError
from edplog.records import BatchBuilder, decode_batches

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
KAFKA_CODEC = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
NOW = 1_700_000_000_000


def make_batch(records, base_offset, codec="none", ts=NOW, **build):
    """records: (key, value) pairs, or (offset_delta, key, value) to leave gaps."""
    b = BatchBuilder()
    for i, rec in enumerate(records):
        delta, key, value = rec if len(rec) == 3 else (i, *rec)
        b.append_at(delta, value, key, [("h", b"%d" % delta)], ts + delta)
    return b.build(codec, base_offset=base_offset, **build)


def log_of(batches, codec="none", ts=NOW):
    """Contiguous batches from lists of (key, value); returns the bytes and (offset, key,
    value, batch max timestamp) of every record."""
    out, rows, offset = b"", [], 0
    for recs in batches:
        out += make_batch(recs, offset, codec, ts)
        for i, (k, v) in enumerate(recs):
            rows.append((offset + i, k, v, ts + len(recs) - 1))
        offset += len(recs)
    return out, rows


def theirs(data):
    """Every batch of data as kafka-python reads it (CRC checked), with its records."""
    mr = MemoryRecords(bytes(data))
    out = []
    while True:
        batch = mr.next_batch()
        if batch is None:
            return out
        assert batch.validate_crc()
        out.append((batch, [(r.offset, r.key, r.value) for r in batch]))


def compacted(rows, deadline_ms):
    """The model: what compaction keeps of rows."""
    latest = {}
    for off, k, _v, _ts in rows:
        if k is not None:
            latest[k] = max(latest.get(k, -1), off)
    return [
        (off, k, v)
        for off, k, v, ts in rows
        if k is None or (off >= latest[k] and not (v is None and ts < deadline_ms))
    ]


def clean(data, deadline_ms=0, capacity=1 << 20, map_data=None):
    m = _native.OffsetMap(capacity)
    seen, covered, full = m.add_batches(data if map_data is None else map_data)
    assert not full
    out = bytearray()
    removed, tombstones = _native.filter_batches(data, m, deadline_ms, out)
    return bytes(out), removed, tombstones


# ---- the map --------------------------------------------------------------------------------


def test_put_keeps_the_largest_offset_of_each_key():
    m = _native.OffsetMap(4096)
    assert m.get(b"a") == -1 and len(m) == 0 and m.max_offset == -1
    assert m.put(b"a", 5) and m.put(b"a", 3) and m.put(b"", 7)
    assert (m.get(b"a"), m.get(b""), m.get(b"b")) == (5, 7, -1)
    assert m.put(bytearray(b"a"), 9) and m.get(memoryview(b"a")) == 9
    assert len(m) == 2 and m.max_offset == 9
    m.clear()
    assert len(m) == 0 and m.get(b"a") == -1


def test_map_capacity_is_fixed_by_its_bytes():
    """24 bytes a slot, 80 % of slots usable; a full map refuses new keys only."""
    m = _native.OffsetMap(24 * 100)
    assert m.capacity == 80
    for i in range(80):
        assert m.put(b"key-%d" % i, i)
    assert m.full
    assert not m.put(b"one too many", 100)
    assert m.get(b"one too many") == -1
    assert m.put(b"key-3", 500) and m.get(b"key-3") == 500  # known keys still move on
    with pytest.raises(ValueError):
        _native.OffsetMap(47)
    with pytest.raises(ValueError):
        m.put(b"x", -1)


def test_distinct_keys_keep_distinct_entries():
    """200,000 keys of near-identical shapes (counters in text and binary, single-bit
    differences, long shared prefixes, lengths 0..) each get their own entry: no two
    fingerprints merged."""
    keys = set()
    keys.update(b"user-%08d" % i for i in range(50_000))
    keys.update(struct.pack("<Q", i) for i in range(50_000))
    keys.update(struct.pack(">Q", 1 << (i % 64)) + bytes(i // 64) for i in range(20_000))
    keys.update(b"p" * 100 + struct.pack("<I", i) for i in range(50_000))
    keys.update(bytes(n) for n in range(30_000))
    m = _native.OffsetMap(24 * 300_000)
    for i, k in enumerate(keys):
        assert m.put(k, i)
    assert len(m) == len(keys)
    assert all(m.get(k) == i for i, k in enumerate(keys))


@pytest.mark.parametrize("codec", CODECS)
def test_add_batches_holds_the_latest_offset_of_every_key(codec):
    data, rows = log_of([[(b"a", b"1"), (b"b", b"2"), (None, b"3")], [(b"a", b"4")]], codec)
    m = _native.OffsetMap(1 << 16)
    assert m.add_batches(data) == (4, 3, False)
    assert (m.get(b"a"), m.get(b"b"), len(m)) == (3, 1, 2)


def test_full_map_covers_a_prefix_and_says_where_it_ends():
    """Ten slots take eight keys: the ninth distinct key stops the walk before its record,
    so everything below that record's offset is covered."""
    recs = [(b"k%d" % (i % 12), b"v") for i in range(30)]
    data, _ = log_of([recs[:5], recs[5:20], recs[20:]], "lz4")
    m = _native.OffsetMap(24 * 10)
    seen, covered, full = m.add_batches(data)
    assert full and (seen, covered) == (8, 7)
    assert len(m) == 8 and m.get(b"k7") == 7 and m.get(b"k8") == -1
    # the cleaner builds the next map from the offset after the covered prefix
    m2 = _native.OffsetMap(1 << 16)
    assert m2.add_batches(data) == (30, 29, False)


def test_empty_buffer_covers_nothing():
    assert _native.OffsetMap(4096).add_batches(b"") == (0, -1, False)


# ---- filtering ------------------------------------------------------------------------------

key = st.one_of(st.none(), st.sampled_from([b"a", b"b", b"c", b"dd", b""]))
value = st.one_of(st.none(), st.binary(max_size=30))
log_shape = st.lists(
    st.lists(st.tuples(key, value), min_size=1, max_size=8), min_size=1, max_size=6
)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(
    batches=log_shape,
    codec=st.sampled_from(CODECS),
    deadline=st.sampled_from([0, NOW + 3, NOW + 100]),
)
def test_filter_keeps_what_the_model_keeps_and_kafka_python_reads_it(batches, codec, deadline):
    data, rows = log_of(batches, codec)
    out, removed, tombstones = clean(data, deadline)
    want = compacted(rows, deadline)
    got = [rec for _batch, recs in theirs(out) for rec in recs]
    assert got == want
    assert removed == len(rows) - len(want)
    assert tombstones == sum(1 for _o, k, v in want if k is not None and v is None)
    # offsets never move: every batch kept keeps its base offset and last offset delta,
    # and the last batch is always there, so the log's end offset stays
    ours = {(b.base_offset, b.last_offset) for b in decode_batches(out)}
    assert ours <= {(b.base_offset, b.last_offset) for b in decode_batches(data)}
    assert decode_batches(out)[-1].last_offset == len(rows) - 1
    assert _native.validate_records(out, strict=False)[1] == len(want)


@pytest.mark.parametrize("codec", CODECS)
def test_compressed_batches_are_recompressed_with_their_codec(codec):
    """Keys 0..24 over offsets 0..39: the first batch keeps only offsets 15..19 (the latest of
    keys 15..19) and is rewritten; the second keeps everything and is copied as it is."""
    recs = [(b"k%d" % (i % 25), b"value %d " % i * 20) for i in range(40)]
    data, rows = log_of([recs[:20], recs[20:]], codec)
    out, removed, _ = clean(data)
    assert removed == 15
    (first, kept1), (second, kept2) = theirs(out)
    assert [b.compression for b in decode_batches(out)] == [codec, codec]
    assert first.compression_type == KAFKA_CODEC[codec] and first.records_count == 5
    assert kept1 == [(o, k, v) for o, k, v, _ts in rows[15:20]]
    assert kept2 == [(o, k, v) for o, k, v, _ts in rows[20:]]
    assert out.endswith(data[len(make_batch(recs[:20], 0, codec)) :])


def test_unchanged_batches_are_copied_byte_for_byte():
    data, _ = log_of([[(b"a", b"1"), (None, b"2")], [(b"b", b"3")]], "zstd")
    out, removed, tombstones = clean(data)
    assert (out, removed, tombstones) == (data, 0, 0)


def test_filtered_batch_keeps_every_header_field_and_gets_a_fresh_crc():
    raw = make_batch(
        [(b"a", b"old"), (b"b", b"x"), (b"a", b"new")],
        1000,
        "gzip",
        producer_id=77,
        producer_epoch=3,
        base_sequence=40,
        transactional=True,
        leader_epoch=9,
    )
    out, removed, _ = clean(raw)
    assert removed == 1
    (before,), (after,) = decode_batches(raw), decode_batches(out)
    for field in (
        "base_offset",
        "last_offset",
        "leader_epoch",
        "attributes",
        "base_timestamp_ms",
        "max_timestamp_ms",
        "producer_id",
        "producer_epoch",
        "base_sequence",
    ):
        assert getattr(after, field) == getattr(before, field), field
    assert after.crc != before.crc and after.record_count == 2
    # kept records are the originals, timestamps and headers included
    assert [(r.offset, r.key, r.value, r.timestamp_ms, r.headers) for r in after.records] == [
        (r.offset, r.key, r.value, r.timestamp_ms, r.headers) for r in before.records[1:]
    ]
    ((batch, _),) = theirs(out)
    assert batch.producer_id == 77 and batch.is_transactional


def test_tombstones_are_kept_until_the_deadline_then_dropped():
    data, _ = log_of([[(b"a", b"1"), (b"b", b"2")], [(b"a", None), (b"c", b"3")]], "lz4")
    tomb_ts = NOW + 1  # the second batch's maxTimestamp
    out, removed, tombstones = clean(data, deadline_ms=tomb_ts)
    assert (removed, tombstones) == (1, 1)
    assert [recs for _b, recs in theirs(out)] == [
        [(1, b"b", b"2")],
        [(2, b"a", None), (3, b"c", b"3")],
    ]
    out, removed, tombstones = clean(data, deadline_ms=tomb_ts + 1)
    assert (removed, tombstones) == (2, 0)
    assert [recs for _b, recs in theirs(out)] == [[(1, b"b", b"2")], [(3, b"c", b"3")]]


def test_keyless_records_are_always_kept():
    data, _ = log_of([[(None, b"1"), (b"a", b"2"), (None, None)], [(b"a", b"3"), (None, b"4")]])
    out, removed, _ = clean(data, deadline_ms=NOW + 10**9)
    assert removed == 1
    kept = [rec for _b, recs in theirs(out) for rec in recs]
    assert kept == [(0, None, b"1"), (2, None, None), (3, b"a", b"3"), (4, None, b"4")]


def test_emptied_batches_are_dropped_but_the_last_is_kept_empty():
    """A sealed segment cleaned against a map of the whole log: its batches superseded by
    later segments disappear, except the last, which stays (no records, same offsets) so
    the segment still ends where it did."""
    segment, _ = log_of([[(b"a", b"1")], [(b"b", b"2")], [(b"c", b"3"), (b"d", b"4")]], "snappy")
    later = make_batch([(b"a", b"x"), (b"c", b"y"), (b"d", b"z")], 4, "snappy")
    out, removed, _ = clean(segment, map_data=segment + later)
    assert removed == 3
    batches = decode_batches(out)
    assert [(b.base_offset, b.last_offset, b.record_count) for b in batches] == [
        (1, 1, 1),
        (2, 3, 0),
    ]
    assert batches[-1].compression == "none" and batches[-1].size_bytes == 61
    (_, kept), (empty, nothing) = theirs(out)
    assert kept == [(1, b"b", b"2")] and nothing == [] and empty.last_offset_delta == 1
    assert _native.validate_records(out, strict=False)[:2] == (2, 1)


def test_control_batches_pass_unchanged_and_are_not_mapped():
    b = BatchBuilder()
    b.append(b"\x00\x00\x00\x00\x00\x00", key=b"\x00\x00\x00\x01", timestamp_ms=NOW)
    marker = b.build(base_offset=2, producer_id=5, producer_epoch=1, control=True)
    data = make_batch([(b"a", b"1"), (b"a", b"2")], 0, "zstd") + marker
    m = _native.OffsetMap(4096)
    assert m.add_batches(data) == (2, 2, False)
    assert m.get(b"\x00\x00\x00\x01") == -1
    out = bytearray()
    assert _native.filter_batches(data, m, 0, out) == (1, 0)
    assert bytes(out).endswith(marker)
    assert decode_batches(bytes(out))[-1].is_control


def test_corrupt_batch_is_refused_and_out_is_left_as_it_was():
    good = make_batch([(b"a", b"1"), (b"a", b"2")], 0, "lz4")
    bad = bytearray(make_batch([(b"b", b"3")], 2, "lz4"))
    bad[-3] ^= 0xFF  # the CRC no longer matches
    m = _native.OffsetMap(4096)
    with pytest.raises(CorruptRecordError) as info:
        m.add_batches(good + bytes(bad))
    assert info.value.position == len(good) + 17  # its CRC field
    m.add_batches(good)
    out = bytearray(b"kept")
    with pytest.raises(CorruptRecordError):
        _native.filter_batches(good + bytes(bad), m, 0, out)
    assert out == b"kept"
