"""The read side of a partition log: records, NumPy columns, fetch slices, time lookups.

``LogReader`` is a mixin of :class:`edplog.Log`; it relies on the log's segment list
(``_segments``, ``_bases``), its log start offset and its writer lock. Every batch read is
checked (structure and CRC); damage raises CorruptRecordError naming file and position.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from . import _native
from .errors import CorruptRecordError, EdplogError, OffsetOutOfRangeError

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
    """Reads of a Log (see the module docstring)."""

    _segments: list[_native.Segment]
    _bases: list[int]
    _log_start_offset: int
    log_end_offset: int

    def _check_range(self, offset: int) -> None:
        if offset < self._log_start_offset or offset > self.log_end_offset:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside [{self._log_start_offset}, {self.log_end_offset}]",
                offset=offset,
            )

    def _scan(self, offset: int, chunk_bytes: int, consume: Any) -> None:
        """Feed chunks of whole batches, from the one holding offset, to consume.

        consume(segment, position, data) returns (bytes_used, stop). When it uses nothing,
        the batch at that position is larger than the chunk and is read again whole.
        """
        i = max(bisect.bisect_right(self._bases, offset) - 1, 0)
        # One buffer for every chunk: fresh memory costs a page fault per 4 KiB on first touch,
        # more than the copy itself (perf.md, quirk 1). consume must not keep a view of data.
        buf = bytearray(chunk_bytes)
        for seg in self._segments[i:]:
            pos = seg.find(offset)
            want = chunk_bytes
            while pos < seg.size:
                if want > len(buf):
                    buf = bytearray(want)
                data = memoryview(buf)[: seg.readinto(memoryview(buf)[:want], pos)]
                try:
                    used, stop = consume(seg, pos, data)
                except EdplogError as exc:
                    self._reraise(exc, seg, pos)
                if stop:
                    return
                if used == 0:
                    need = int.from_bytes(data[8:12], "big") + 12 if len(data) >= 12 else 0
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

    def _reraise(self, exc: EdplogError, seg: _native.Segment, pos: int) -> None:
        raise type(exc)(
            f"{seg.path}: {exc} (at position {pos + (exc.position or 0)})",
            path=seg.path,
            position=pos + (exc.position or 0),
            offset=exc.offset,
        ) from exc

    def read(self, offset: int, max_records: int | None = None) -> list[_native.Record]:
        """Records from offset on (at most max_records), as Record objects.

        Every batch read is checked (structure and CRC); damage raises CorruptRecordError
        naming the file and position.
        """
        self._seal()
        self._check_range(offset)
        return self._read(offset, max_records)

    def _read(self, offset: int, max_records: int | None) -> list[_native.Record]:
        """read() without writing the open batch first (for callers holding the lock)."""
        out: list[_native.Record] = []
        limit = -1 if max_records is None else max_records

        def consume(seg: _native.Segment, pos: int, data: bytes) -> tuple[int, bool]:
            used, _ = _native.decode_records_into(out, data, offset, limit)
            return used, 0 <= limit <= len(out)

        if limit != 0:
            self._scan(offset, _READ_CHUNK_BYTES, consume)
        return out

    def __iter__(self) -> Iterator[_native.Record]:
        """Every record from the log start offset, read a chunk at a time."""
        self._seal()
        return self._iter_written()

    def _iter_written(self) -> Iterator[_native.Record]:
        offset = self._log_start_offset
        while True:
            batch = self._read(offset, 10_000) if offset < self.log_end_offset else []
            if not batch:
                return
            yield from batch
            offset = batch[-1].offset + 1

    def read_numpy(self, offset: int, max_records: int | None = None) -> RecordColumns:
        """Records from offset on as NumPy columns: no Python object per record.

        Batches are checked as in read(). Keys and headers are not returned.
        """
        self._seal()
        self._check_range(offset)
        remaining = self.log_end_offset - offset
        cap = remaining if max_records is None else min(remaining, max_records)
        cap = max(cap, 0)
        offsets = np.empty(cap, np.int64)
        timestamps = np.empty(cap, np.int64)
        lengths = np.empty(cap, np.int32)
        # Uncompressed values take less room than the batches holding them: size the value
        # buffer from the log bytes those records occupy (compressed ones grow it as needed).
        i = max(bisect.bisect_right(self._bases, offset) - 1, 0)
        log_bytes = sum(seg.size for seg in self._segments[i:])
        values = np.empty(int(log_bytes * cap / max(remaining, 1)) + (1 << 16), np.uint8)
        state = {"n": 0, "vn": 0, "values": values}

        def consume(seg: _native.Segment, pos: int, data: bytes) -> tuple[int, bool]:
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

    def fetch_slices(self, offset: int, max_bytes: int) -> list[tuple[_native.Segment, int, int]]:
        """Where the whole batches from the one holding offset lie: [(segment, pos, length)].

        At least one whole batch is returned when there is one (even above max_bytes), none
        at the log end; a fetch sends these ranges with sendfile.
        """
        self._seal()
        self._check_range(offset)
        i = max(bisect.bisect_right(self._bases, offset) - 1, 0)
        for seg in self._segments[i:]:
            pos, length = seg.slice(offset, max_bytes)
            if length:
                return [(seg, pos, length)]
        return []

    def read_batches(self, offset: int, max_bytes: int) -> bytes:
        """The bytes of whole batches from the one holding offset, as a fetch serves them."""
        return b"".join(seg.pread(pos, n) for seg, pos, n in self.fetch_slices(offset, max_bytes))

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """The first record whose timestamp >= timestamp_ms: (offset, timestamp), or None."""
        self._seal()
        for seg in list(self._segments):
            if seg.max_timestamp_ms < timestamp_ms or seg.next_offset <= self._log_start_offset:
                continue
            pos = seg.find_timestamp(timestamp_ms)
            while pos < seg.size:
                data = seg.pread(pos, _READ_CHUNK_BYTES)
                out: list[_native.Record] = []
                used, _ = _native.decode_records_into(out, data, self._log_start_offset, -1)
                for r in out:
                    if r.timestamp_ms >= timestamp_ms:
                        return r.offset, r.timestamp_ms
                if used == 0:
                    break
                pos += used
        return None
