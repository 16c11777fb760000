"""What walking every record of a compressed batch costs on the produce path: producer-built
lz4 and zstd batches (JSON-ish records of 100 B and 1 KiB, about 1 MiB uncompressed per batch,
keyed and time-stamped as librdkafka builds them) appended to an embedded ``edplog.Log`` one
batch per call, as the broker appends one partition's batch of a Produce request, with
``Log.check_compressed_records`` on (what the broker always does) and off (the structure and
CRC check alone: the produce path before the walk existed), side by side in one run.

Run: .venv-test/bin/python -m pytest bench/bench_produce_validation.py --benchmark-only

Appending to a new file is bimodal on this VM (perf.md, quirk 1: the first touch of guest
memory), and the state lasts several calls, so walk on and walk off are measured in
alternation: each round of one setting is preceded, in the round's untimed setup, by the
other setting appending the same batches to a twin log (timed by this module, not by
pytest-benchmark), and the walk's cost is read from those pairs. Each group holds one codec
and record size, walk off and on. ``extra_info`` has each one's MB/s of uncompressed records
and of bytes on disk (medians of its timed calls), and for the walk the median over its
rounds of the pair ratio walk / no walk (the issue's aim: >= 0.8x) and of what the walk adds
in ms per GB of uncompressed records, with their min-max. The session ends with the same
figures as one table. Every timed call's result is checked after it returns.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest

from edplog import Log
from edplog.perf.compare import data
from edplog.records import build_batch

BATCH_UNCOMPRESSED = 1 << 20  # librdkafka's batch.size default is 1,000,000
BATCHES = 16  # per timed call: 16 MiB of records
ROUNDS = 15
HEADER_BYTES = 61  # RecordBatch v2 header before the records section
TIMESTAMP_MS = 1_700_000_000_000
RECORDS_PER_MS = 1000  # librdkafka stamps each record as produced: deltas grow along a batch
# Kafka topic properties: no fsync, so the figures are the append path, not the disk.
NO_FSYNC = {"flush.messages": 2**63 - 1, "flush.ms": 2**63 - 1}
SUMMARY_PLUGIN = "edplog-produce-validation-summary"


def _records(value_bytes: int, first: int, count: int) -> list[tuple[bytes, bytes, None, int]]:
    pool = data.payloads(value_bytes)
    return [
        (
            b"user-%d" % (i % 5000),
            pool[i % len(pool)],
            None,
            TIMESTAMP_MS + (i - first) // RECORDS_PER_MS,
        )
        for i in range(first, first + count)
    ]


def _per_batch(value_bytes: int) -> int:
    """Records that fill BATCH_UNCOMPRESSED, from the size of an uncompressed trial batch."""
    trial = 2048
    section = len(build_batch(_records(value_bytes, 0, trial))) - HEADER_BYTES
    return max(1, round(BATCH_UNCOMPRESSED * trial / section))


def producer_batches(codec: str, value_bytes: int) -> tuple[list[bytearray], int, int, bytes]:
    """BATCHES producer batches: (writable batches, records, uncompressed bytes of the records
    sections, value of the last record). Writable, as a receive buffer is: the log assigns
    offsets in place, and the CRC does not cover them, so the same bytes append again."""
    per = _per_batch(value_bytes)
    batches: list[bytearray] = []
    plain = 0
    last_value = b""
    for n in range(BATCHES):
        records = _records(value_bytes, n * per, per)
        plain += len(build_batch(records)) - HEADER_BYTES
        batches.append(bytearray(build_batch(records, codec)))
        last_value = records[-1][1]
    return batches, BATCHES * per, plain, last_value


def append_all(log: Log, batches: list[bytearray]) -> int:
    """One ``append_batches`` per batch; returns the last offset assigned."""
    last = -1
    append = log.append_batches
    for batch in batches:
        last = append(batch)[1]
    return last


class TwinLogs:
    """The measured log and its twin with the other setting, removed at teardown."""

    def __init__(self, root: str, walk: bool) -> None:
        self.paths = [os.path.join(root, "measured"), os.path.join(root, "twin")]
        self.measured = Log(self.paths[0], config=NO_FSYNC)
        self.twin = Log(self.paths[1], config=NO_FSYNC)
        self.measured.check_compressed_records = walk
        self.twin.check_compressed_records = not walk

    def close(self) -> None:
        for log in (self.measured, self.twin):
            log.close()
        for path in self.paths:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def twins(bench_dir: str, walk: bool) -> Iterator[TwinLogs]:
    made = TwinLogs(bench_dir, walk)
    try:
        yield made
    finally:
        made.close()


# (codec, value bytes) -> walk -> median seconds of its timed calls, this run
_MEDIANS: dict[tuple[str, int], dict[bool, float]] = {}
# (codec, value bytes) -> (uncompressed bytes, bytes on disk) of one timed call
_VOLUME: dict[tuple[str, int], tuple[int, int]] = {}
# (codec, value bytes) -> per-round (walk seconds, no-walk seconds) from the walk's test
_PAIRS: dict[tuple[str, int], list[tuple[float, float]]] = {}

CASES = [
    (codec, size, walk)
    for codec in ("lz4", "zstd")
    for size in (100, 1024)
    for walk in (False, True)
]


@pytest.mark.parametrize(("codec", "value_bytes", "walk"), CASES)
def test_produce_append(
    benchmark: Any, twins: TwinLogs, codec: str, value_bytes: int, walk: bool
) -> None:
    benchmark.group = f"append {codec} producer batches of {value_bytes} B records"
    batches, records, plain, last_value = producer_batches(codec, value_bytes)
    on_disk = sum(len(b) for b in batches)
    twin_seconds: list[float] = []

    def other_setting_first() -> tuple[tuple[Any, ...], dict[str, Any]]:
        start = time.perf_counter()
        append_all(twins.twin, batches)
        twin_seconds.append(time.perf_counter() - start)
        return (twins.measured, batches), {}

    result = benchmark.pedantic(
        append_all, setup=other_setting_first, rounds=ROUNDS, iterations=1, warmup_rounds=1
    )
    calls = len(twin_seconds)  # one setup per call, the warm-up's included
    assert twins.measured.check_compressed_records is walk
    assert twins.twin.check_compressed_records is not walk
    for log in (twins.measured, twins.twin):
        assert log.log_end_offset == calls * records
        tail = log.read(calls * records - 1, 1)[0]
        assert (tail.offset, tail.value) == (calls * records - 1, last_value)
    assert result == calls * records - 1
    stats = getattr(benchmark.stats, "stats", None)
    if stats is None:  # --benchmark-disable
        return
    key = (codec, value_bytes)
    _MEDIANS.setdefault(key, {})[walk] = stats.median
    _VOLUME[key] = (plain, on_disk)
    info: dict[str, float] = {
        "records": records,
        "compression_ratio": round(plain / on_disk, 2),
        "uncompressed_MB_per_s": round(plain / stats.median / 1e6, 1),
        "disk_MB_per_s": round(on_disk / stats.median / 1e6, 1),
    }
    if walk:
        # The warm-up round's twin call is left out with the warm-up itself.
        pairs = list(zip(stats.data, twin_seconds[1:], strict=True))
        _PAIRS[key] = pairs
        ratios = [off / on for on, off in pairs]
        costs = [(on - off) / (plain / 1e9) * 1e3 for on, off in pairs]
        info.update(
            walk_over_no_walk=round(statistics.median(ratios), 3),
            walk_over_no_walk_min=round(min(ratios), 3),
            walk_over_no_walk_max=round(max(ratios), 3),
            walk_ms_per_GB=round(statistics.median(costs), 1),
            walk_ms_per_GB_min=round(min(costs), 1),
            walk_ms_per_GB_max=round(max(costs), 1),
        )
    benchmark.extra_info.update(info)


class _Summary:
    """The session's figures as one table (pytest-benchmark prints times, not ratios)."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not _PAIRS:
            return
        write = terminalreporter.write_line
        terminalreporter.section("compressed-batch record walk on append (this run, medians)")
        write(
            f"{'batches':<12} {'no walk MB/s':>12} {'walk MB/s':>10} {'walk disk MB/s':>14} "
            f"{'walk/no walk (min-max)':>24} {'walk ms/GB (min-max)':>24}  goal >= 0.8x"
        )
        for (codec, size), pairs in _PAIRS.items():
            plain, on_disk = _VOLUME[(codec, size)]
            medians = _MEDIANS[(codec, size)]
            ratios = [off / on for on, off in pairs]
            costs = [(on - off) / (plain / 1e9) * 1e3 for on, off in pairs]
            ratio = statistics.median(ratios)
            off_rate = f"{plain / medians[False] / 1e6:,.0f}" if False in medians else "-"
            write(
                f"{f'{codec} {size} B':<12} {off_rate:>12} {plain / medians[True] / 1e6:>10,.0f} "
                f"{on_disk / medians[True] / 1e6:>14,.0f} "
                f"{f'{ratio:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})':>24} "
                f"{f'{statistics.median(costs):,.0f} ({min(costs):,.0f}-{max(costs):,.0f})':>24}"
                f"  {'met' if ratio >= 0.8 else 'NOT met'}"
            )
        write(
            "MB/s: uncompressed records (disk: as stored), medians of each test's timed calls; "
            f"ratio and ms/GB: medians over the {ROUNDS} alternating pairs of the walk's test"
        )


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> None:
    manager = request.config.pluginmanager
    if not manager.has_plugin(SUMMARY_PLUGIN):
        manager.register(_Summary(), SUMMARY_PLUGIN)
