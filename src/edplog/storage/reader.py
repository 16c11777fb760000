"""The read side of a partition log: records, NumPy columns, fetch slices, time lookups.

A :class:`LogReader` reads through a log's native writer (``LogCore``): its segment-list
snapshot, its log start and end offsets, and ``seal`` (so a read sees every record appended
before it). It touches nothing else. Every batch read is checked (structure and CRC); damage
raises CorruptRecordError naming file and position.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from .. import _native
from ..errors import CorruptRecordError, EdplogError, OffsetOutOfRangeError

_READ_CHUNK_BYTES = 1 << 20


class RecordColumns(NamedTuple):
    """Records as columns, for analytics: row i is the record at offsets[i].

    values holds every value back to back; value i is
    ``values[value_offsets[i] : value_offsets[i] + max(value_lengths[i], 0)]``, and a length
    of -1 marks a null value.
    """

    offsets: np.ndarray  # int64
    timestamps_ms: np.ndarray  # int64
    value_lengths: np.ndarray  # int32
    value_offsets: np.ndarray  # int64
    values: np.ndarray  # uint8


class LogReader:
    """Reads of one log through its native writer (see the module docstring)."""

    def __init__(self, core: Any) -> None:
        self._core = core

    def readable_end(self) -> int:
        """The log end offset, or the fence an fsync failure set (see Log.readable_end_offset)."""
        fenced = self._core.fenced_offset
        return int(fenced) if fenced >= 0 else int(self._core.log_end_offset)

    def check_range(self, offset: int) -> None:
        core = self._core
        end = self.readable_end()
        if offset < core.log_start_offset or offset > end:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside [{core.log_start_offset}, {end}]", offset=offset
            )

    def _scan(self, offset: int, chunk_bytes: int, consume: Any) -> None:
        """Feed chunks of whole batches, from the one holding offset, to consume.

        consume(segment, position, data) returns (bytes_used, stop). When it uses nothing,
        the batch at that position is larger than the chunk and is read again whole.
        """
        core = self._core
        segments = core.segments
        i = core.segment_index(offset)
        # One buffer for every chunk: fresh memory costs a page fault per 4 KiB on first touch,
        # more than the copy itself (perf.md, quirk 1). consume must not keep a view of data.
        buf = bytearray(chunk_bytes)
        for seg in segments[i:]:
            pos = seg.find(offset)
            want = chunk_bytes
            while pos < seg.size:
                if want > len(buf):
                    buf = bytearray(want)
                data = memoryview(buf)[: seg.readinto(memoryview(buf)[:want], pos)]
                try:
                    used, stop = consume(seg, pos, data)
                except EdplogError as exc:
                    _reraise(exc, seg, pos)
                if stop:
                    return
                if used == 0:
                    need = _batch_bytes(data)
                    if need <= len(data) or need > seg.size - pos:
                        raise CorruptRecordError(
                            f"{seg.path}: unreadable batch at position {pos}",
                            path=seg.path,
                            position=pos,
                        )
                    want = need
                    continue
                pos += used
                want = chunk_bytes

    def read(self, offset: int, max_records: int | None = None) -> list[_native.Record]:
        self._core.seal()
        self.check_range(offset)
        return self.read_written(offset, max_records)

    def read_written(self, offset: int, max_records: int | None) -> list[_native.Record]:
        """read() without writing the open batch first (for callers holding the lock)."""
        out: list[_native.Record] = []
        limit = -1 if max_records is None else max_records
        if self._core.fenced_offset >= 0:
            allowed = max(self.readable_end() - offset, 0)
            limit = allowed if limit < 0 else min(limit, allowed)

        def consume(seg: _native.Segment, pos: int, data: Any) -> tuple[int, bool]:
            used, _ = _native.decode_records_into(out, data, offset, limit)
            return used, 0 <= limit <= len(out)

        if limit != 0:
            self._scan(offset, _READ_CHUNK_BYTES, consume)
        return out

    def iter_records(self) -> Iterator[_native.Record]:
        """Every record from the log start offset, read a chunk at a time."""
        self._core.seal()
        core = self._core
        offset = core.log_start_offset
        while True:
            batch = self.read_written(offset, 10_000) if offset < core.log_end_offset else []
            if not batch:
                return
            yield from batch
            offset = batch[-1].offset + 1

    def read_numpy(self, offset: int, max_records: int | None = None) -> RecordColumns:
        core = self._core
        core.seal()
        self.check_range(offset)
        remaining = core.log_end_offset - offset
        cap = remaining if max_records is None else min(remaining, max_records)
        cap = max(cap, 0)
        offsets = np.empty(cap, np.int64)
        timestamps = np.empty(cap, np.int64)
        lengths = np.empty(cap, np.int32)
        # Uncompressed values take less room than the batches holding them: size the value
        # buffer from the log bytes those records occupy (compressed ones grow it as needed).
        log_bytes = sum(seg.size for seg in core.segments[core.segment_index(offset) :])
        values = np.empty(int(log_bytes * cap / max(remaining, 1)) + (1 << 16), np.uint8)
        state: dict[str, Any] = {"n": 0, "vn": 0, "values": values}

        def consume(seg: _native.Segment, pos: int, data: Any) -> tuple[int, bool]:
            if state["n"] >= cap:
                return 0, True
            used, n, vn, full = _native.decode_columns_into(
                data, offset, offsets, timestamps, lengths, state["values"], state["n"], state["vn"]
            )
            state["n"], state["vn"] = n, vn
            while full and used == 0:
                # The value buffer ran out inside the first batch: grow it and decode again.
                grown = np.empty(max(2 * len(state["values"]), vn + 4 * len(data)), np.uint8)
                grown[:vn] = state["values"][:vn]
                state["values"] = grown
                used, n, vn, full = _native.decode_columns_into(
                    data, offset, offsets, timestamps, lengths, grown, n, vn
                )
                state["n"], state["vn"] = n, vn
            if full:
                grown = np.empty(max(2 * len(state["values"]), vn + 4 * len(data)), np.uint8)
                grown[:vn] = state["values"][:vn]
                state["values"] = grown
            return used, n >= cap

        if cap:
            self._scan(offset, 4 * _READ_CHUNK_BYTES, consume)
        n, vn, values = state["n"], state["vn"], state["values"]
        value_offsets = np.zeros(n, np.int64)
        if n > 1:
            np.cumsum(np.maximum(lengths[: n - 1], 0), out=value_offsets[1:])
        return RecordColumns(offsets[:n], timestamps[:n], lengths[:n], value_offsets, values[:vn])

    def fetch_slices(
        self, offset: int, max_bytes: int, max_offset: int = -1, *, verify: bool = True
    ) -> list[tuple[_native.Segment, int, int]]:
        core = self._core
        core.seal()
        self.check_range(offset)
        if core.fenced_offset >= 0:
            fence = int(core.fenced_offset)
            max_offset = fence if max_offset < 0 else min(max_offset, fence)
        found = core.fetch_slice(offset, max_bytes, max_offset)
        if found is None:
            return []
        seg, pos, length = found
        if verify and seg.verified_pos < pos + length:
            seg.verify(pos + length)
        return [found]

    def read_batches(self, offset: int, max_bytes: int) -> bytes:
        return b"".join(seg.pread(pos, n) for seg, pos, n in self.fetch_slices(offset, max_bytes))

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        core = self._core
        core.seal()
        start = core.log_start_offset
        for seg in core.segments:
            if seg.max_timestamp_ms < timestamp_ms or seg.next_offset <= start:
                continue
            pos = seg.find_timestamp(timestamp_ms)
            while pos < seg.size:
                data = seg.pread(pos, _READ_CHUNK_BYTES)
                out: list[_native.Record] = []
                used, _ = _native.decode_records_into(out, data, start, -1)
                for r in out:
                    if r.timestamp_ms >= timestamp_ms:
                        return r.offset, r.timestamp_ms
                if used == 0:
                    break
                pos += used
        return None

    def max_timestamp(self) -> tuple[int, int] | None:
        core = self._core
        core.seal()
        start = core.log_start_offset
        best: tuple[int, int, _native.Segment] | None = None
        for seg in core.segments:
            if not seg.size or seg.next_offset <= start:
                continue
            ts, last = seg.max_timestamp
            if ts >= 0 and (best is None or ts > best[0]):
                best = (ts, last, seg)  # the first segment wins a tie: the first record
        if best is None:
            return None
        ts, last, seg = best
        # The segment knows the batch (by its last offset); the record is found in it.
        pos = seg.find(last)
        need = _batch_bytes(seg.pread(pos, 12))
        data = seg.pread(pos, need) if need else b""
        if need == 0 or len(data) < need:
            raise CorruptRecordError(
                f"{seg.path}: unreadable batch at position {pos}", path=seg.path, position=pos
            )
        try:
            offset = int(_native.offset_of_timestamp(data, ts))
        except EdplogError as exc:
            _reraise(exc, seg, pos)
        if offset < 0:
            raise CorruptRecordError(
                f"{seg.path}: the batch at position {pos} holds no record with the segment's "
                f"max timestamp {ts}",
                path=seg.path,
                position=pos,
            )
        return offset, ts

    def scan_headers(self, start: int, producers_only: bool = True) -> Iterator[Any]:
        """The batch headers from the batch holding ``start`` to the written end (no CRC
        check; for replaying producer state and leader epochs after recovery)."""
        core = self._core
        for seg in core.segments[core.segment_index(start) :]:
            pos = seg.find(start)
            while pos < seg.size:
                data = seg.pread(pos, 4 * _READ_CHUNK_BYTES)
                used = _native.whole_batches(data)
                if used == 0:
                    need = _batch_bytes(data)
                    if need <= len(data):
                        raise CorruptRecordError(
                            f"{seg.path}: unreadable batch at position {pos}",
                            path=seg.path,
                            position=pos,
                        )
                    data = seg.pread(pos, need)
                    used = _native.whole_batches(data)
                    if used == 0:
                        raise CorruptRecordError(
                            f"{seg.path}: unreadable batch at position {pos}",
                            path=seg.path,
                            position=pos,
                        )
                for h in _native.batch_headers(memoryview(data)[:used], producers_only):
                    if h.last_offset >= start:
                        yield h
                pos += used

    def header_at(self, offset: int) -> Any:
        """The header of the batch that holds ``offset`` (or the first after it), or None."""
        core = self._core
        for seg in core.segments[core.segment_index(offset) :]:
            pos = seg.find(offset)
            if pos < seg.size:
                return _native.batch_header(seg.pread(pos, 61), 0, False)
        return None

    def epoch_starts(self, start: int, after_epoch: int) -> list[tuple[int, int]]:
        """Leader epochs that begin in the batches from ``start`` on (see _native.epoch_starts)."""
        core = self._core
        out: list[tuple[int, int]] = []
        latest = after_epoch
        for seg in core.segments[core.segment_index(start) :]:
            pos = seg.find(start)
            while pos < seg.size:
                data = seg.pread(pos, 4 * _READ_CHUNK_BYTES)
                used = _native.whole_batches(data)
                if used == 0:
                    data = seg.pread(pos, max(_batch_bytes(data), 1))
                    used = _native.whole_batches(data)
                    if used == 0:
                        return out
                found = _native.epoch_starts(memoryview(data)[:used], latest)
                if found:
                    out.extend(found)
                    latest = found[-1][0]
                pos += used
        return out


def _batch_bytes(data: Any) -> int:
    """The size the batch at the start of data announces (0 when fewer than 12 bytes)."""
    return int(_native.announced_batch_bytes(data))


def _reraise(exc: EdplogError, seg: _native.Segment, pos: int) -> None:
    raise type(exc)(
        f"{seg.path}: {exc} (at position {pos + (exc.position or 0)})",
        path=seg.path,
        position=pos + (exc.position or 0),
        offset=exc.offset,
    ) from exc
