"""A state machine of Log against a plain Python model: appends (one record at a time and as
ready batches), reads (records and NumPy columns), roll, flush, close/reopen, truncate_to,
delete_records_before and retention.bytes. The model knows batch boundaries because
truncate_to removes a batch holding its offset whole."""

from __future__ import annotations

import bisect
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from edplog import Log
from edplog.errors import OffsetOutOfRangeError
from edplog.records import build_batch

CONFIG = {
    "segment.bytes": 1500,
    "segment.index.bytes": 4096,
    "index.interval.bytes": 100,
    "retention.bytes": 2500,
    "retention.ms": -1,
}
small = st.one_of(st.none(), st.binary(max_size=40))


class LogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="edplog-model-")
        self.path = self.dir + "/t-0"
        self.log = Log(self.path, CONFIG)
        self.recs: dict[int, tuple[bytes | None, bytes | None]] = {}
        self.lso = 0
        self.leo = 0
        self.bounds: list[int] = []  # base offsets of written batches
        self.pending_from = 0  # first offset of the open batch (leo when there is none)

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- model helpers ----------------------------------------------------------------------

    def seal(self) -> None:
        """What every operation that writes the open batch does to the model."""
        if self.pending_from < self.leo:
            self.bounds.append(self.pending_from)
        self.pending_from = self.leo

    def expected(self, offset: int, max_records: int | None) -> list:
        end = self.leo if max_records is None else min(self.leo, offset + max_records)
        return [(o, *self.recs[o]) for o in range(offset, end)]

    # ---- rules ------------------------------------------------------------------------------

    @rule(key=small, value=small)
    def append(self, key, value):
        assert self.log.append(value, key=key) == self.leo
        self.recs[self.leo] = (key, value)
        self.leo += 1

    @rule(
        recs=st.lists(st.tuples(small, small), min_size=1, max_size=8),
        codec=st.sampled_from(["none", "gzip", "snappy", "lz4", "zstd"]),
    )
    def append_batches(self, recs, codec):
        self.seal()
        n = len(recs)
        assert self.log.append_batches(build_batch(recs, compression=codec)) == (
            self.leo,
            self.leo + n - 1,
        )
        self.bounds.append(self.leo)
        for i, (k, v) in enumerate(recs):
            self.recs[self.leo + i] = (k, v)
        self.leo += n
        self.pending_from = self.leo

    @rule(data=st.data(), max_records=st.one_of(st.none(), st.integers(0, 20)))
    def read(self, data, max_records):
        self.seal()
        offset = data.draw(st.integers(self.lso, self.leo))
        got = [(r.offset, r.key, r.value) for r in self.log.read(offset, max_records)]
        assert got == self.expected(offset, max_records)

    @rule(data=st.data(), max_records=st.one_of(st.none(), st.integers(0, 20)))
    def read_numpy(self, data, max_records):
        self.seal()
        offset = data.draw(st.integers(self.lso, self.leo))
        cols = self.log.read_numpy(offset, max_records)
        want = self.expected(offset, max_records)
        assert cols.offsets.tolist() == [o for o, _, _ in want]
        values = bytes(cols.values)
        got = [
            None if n < 0 else values[s : s + n]
            for s, n in zip(cols.value_offsets.tolist(), cols.value_lengths.tolist(), strict=True)
        ]
        assert got == [v for _, _, v in want]

    @rule(data=st.data())
    def read_out_of_range(self, data):
        self.seal()  # read() writes the open batch before it checks the range
        offset = data.draw(
            st.one_of(st.integers(-5, self.lso - 1), st.integers(self.leo + 1, self.leo + 5))
        )
        with pytest.raises(OffsetOutOfRangeError):
            self.log.read(offset)

    @rule()
    def roll(self):
        self.seal()
        self.log.roll()

    @rule()
    def flush(self):
        self.seal()
        self.log.flush()
        assert self.log.recovery_point == self.leo

    @rule()
    def reopen(self):
        self.seal()
        self.log.close()
        self.log = Log(self.path, CONFIG)
        assert self.log.recovery_report == []

    @rule(data=st.data())
    def truncate_to(self, data):
        offset = data.draw(st.integers(self.lso, self.leo + 2))
        self.seal()
        self.log.truncate_to(offset)
        if offset >= self.leo:
            return
        start = self.bounds[bisect.bisect_right(self.bounds, offset) - 1]
        for o in range(start, self.leo):
            self.recs.pop(o, None)
        self.bounds = self.bounds[: bisect.bisect_left(self.bounds, start)]
        self.leo = self.pending_from = start
        self.lso = min(self.lso, start)

    @rule(data=st.data())
    def delete_records_before(self, data):
        offset = data.draw(st.integers(max(self.lso - 2, 0), self.leo + 2))
        self.seal()
        if offset > self.leo:
            with pytest.raises(OffsetOutOfRangeError):
                self.log.delete_records_before(offset)
            return
        self.lso = max(self.lso, offset)
        assert self.log.delete_records_before(offset) == self.lso

    @rule()
    def enforce_retention(self):
        bases = {s.base_offset for s in self.log.segments}
        self.log.enforce_retention()
        new = self.log.log_start_offset
        assert new == self.lso or (new > self.lso and new in bases)
        self.lso = new
        segs = self.log.segments
        assert (
            len(segs) == 1 or sum(s.size for s in segs) - segs[0].size < CONFIG["retention.bytes"]
        )

    # ---- invariants -------------------------------------------------------------------------

    @invariant()
    def offsets_match(self):
        assert self.log.log_start_offset == self.lso
        assert self.log.log_end_offset == self.leo

    @invariant()
    def segments_are_ordered(self):
        bases = [s.base_offset for s in self.log.segments]
        assert bases == sorted(set(bases))
        assert self.log.segments[-1].next_offset <= self.leo


LogModel.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_log_matches_a_list_model = LogModel.TestCase
