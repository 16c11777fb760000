"""Segment (one .log with its indexes) through the native API: recover reports what it cut
and refuses to cut below must_keep_offset; truncate removes whole batches."""

from __future__ import annotations

import os

import pytest

from edplog import _native
from edplog.errors import CorruptRecordError
from edplog.records import assign_offsets, build_batch


def write_segment(directory: str, batches: int = 6) -> tuple[list[int], bytes]:
    buf = b"".join(
        build_batch([(None, b"r%d-%d" % (b, i)) for i in range(3)]) for b in range(batches)
    )
    buf = bytearray(buf)
    assign_offsets(buf, 0)
    seg = _native.Segment(directory, 0)
    seg.append(buf)
    seg.flush()
    seg.close()
    starts, pos = [], 0
    while pos < len(buf):
        starts.append(pos)
        pos += int.from_bytes(buf[pos + 8 : pos + 12], "big") + 12
    return starts, bytes(buf)


def test_segment_recover_reports_the_cut_tail(tmp_path):
    """A torn last batch: recover keeps the whole batches and reports bytes, batches,
    records and the reason."""
    starts, buf = write_segment(str(tmp_path))
    path = _native.segment_file_names(str(tmp_path), 0)[0]
    with open(path, "r+b") as f:
        f.truncate(len(buf) - 10)
    seg = _native.Segment(str(tmp_path), 0)
    valid, cut, batches, records, reason = seg.recover()
    assert (valid, cut, batches, records) == (starts[-1], len(buf) - 10 - starts[-1], 5, 15)
    assert reason
    assert seg.size == starts[-1] == os.path.getsize(path)
    assert seg.next_offset == 15
    seg.close()


def test_segment_recover_refuses_to_cut_below_must_keep_offset(tmp_path):
    """Damage in a batch below must_keep_offset raises and cuts nothing."""
    starts, buf = write_segment(str(tmp_path))
    path = _native.segment_file_names(str(tmp_path), 0)[0]
    data = bytearray(buf)
    data[starts[2] + 65] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)
    seg = _native.Segment(str(tmp_path), 0)
    with pytest.raises(CorruptRecordError) as info:
        seg.recover(17)
    assert info.value.position == starts[2]
    assert os.path.getsize(path) == len(buf)
    seg.close()
    seg = _native.Segment(str(tmp_path), 0)
    assert seg.recover(6)[0] == starts[2]  # damage at or above must_keep_offset is cut
    seg.close()


def test_segment_truncate_removes_the_batch_holding_the_offset_whole(tmp_path):
    starts, _ = write_segment(str(tmp_path))
    seg = _native.Segment(str(tmp_path), 0)
    seg.load()
    seg.truncate(7)  # offset 7 is inside the third batch (6..8)
    assert (seg.size, seg.next_offset) == (starts[2], 6)
    assert seg.find(5) == starts[1]
    seg.close()
