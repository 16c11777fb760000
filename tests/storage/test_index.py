"""Offset and time indexes: every entry points at a batch start, lookups find the batch that
holds an offset, and reopening (trusted or rebuilt) answers the same."""

from __future__ import annotations

import os
import shutil
import tempfile

from conftest import batch_ends
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edplog import Log
from edplog.records import build_batch


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(
        st.tuples(st.integers(1, 6), st.integers(0, 400), st.integers(0, 10**6)),
        min_size=1,
        max_size=60,
    ),
    interval=st.sampled_from([0, 64, 300, 4096]),
)
def test_index_lookups_find_the_batch_holding_every_offset(batches, interval):
    """For batches of random counts, sizes and timestamps: each offset index entry is
    (last offset, start) of a real batch, Segment.find lands on the batch holding each
    offset, and a reopen after deleting the indexes answers identically."""
    d = tempfile.mkdtemp()
    try:
        cfg = {"index.interval.bytes": interval, "segment.index.bytes": 4096}
        with Log(d, cfg) as log:
            for n, size, ts in batches:
                log.append_batches(build_batch([{"value": bytes(size), "timestamp_ms": ts}] * n))
            seg = log.segments[-1]
            data = seg.pread(0, seg.size)
            ends = batch_ends(data)
            starts, lasts = ends[:-1], []
            for pos in starts:
                base = int.from_bytes(data[pos : pos + 8], "big")
                lasts.append(base + int.from_bytes(data[pos + 23 : pos + 27], "big"))
            holder = {}
            first = 0
            for pos, last in zip(starts, lasts, strict=True):
                for o in range(first, last + 1):
                    holder[o] = pos
                first = last + 1
            answers = []
            for o in range(log.log_end_offset):
                ioff, ipos = seg.index_lookup(o)
                assert ioff <= o and ipos <= holder[o]
                assert ipos == 0 or (ipos in starts and lasts[starts.index(ipos)] == ioff)
                assert seg.find(o) == holder[o]
                answers.append((seg.index_lookup(o), seg.find(o)))
            assert seg.find(log.log_end_offset) == seg.size
            ts_answers = [log.offset_for_timestamp(t) for t in (0, 5 * 10**5, 10**6)]
        for name in os.listdir(d):
            if name.endswith((".index", ".timeindex")):
                os.unlink(os.path.join(d, name))
        with Log(d, cfg) as log:
            seg = log.segments[-1]
            assert [(seg.index_lookup(o), seg.find(o)) for o in range(log.log_end_offset)] == (
                answers
            )
            assert [log.offset_for_timestamp(t) for t in (0, 5 * 10**5, 10**6)] == ts_answers
    finally:
        shutil.rmtree(d)
