"""What checking every record costs on the produce path: producer batches of JSON-ish records
(100 B and 1 KiB, batches of about 1 MiB uncompressed) validated by the structure and CRC
check alone (``scan_batches``), by decompressing each records section whole (what a reader
does; the floor for any check that looks inside), and by the full record walk
(``validate_records``, decompressing piece by piece), side by side in one run.

Run: .venv-test/bin/python -m pytest bench/bench_validate.py --benchmark-only

Each group holds the checks of one codec and record size. ``extra_info`` has each one's
uncompressed GB/s and ms per GB of uncompressed records (for the walk: what it adds to the
produce path, as it runs after the scan), and for the walk its ratios to the scan and to the
whole-section decompression, from the medians of this run. Every timed call's result is
checked after it returns.
"""

from __future__ import annotations

from typing import Any

import pytest

from edplog import _native, codecs
from edplog.perf.compare import data
from edplog.records import BatchBuilder, scan_batches

BATCH_UNCOMPRESSED = 1 << 20  # librdkafka's batch.size default is 1,000,000
BATCHES = 8  # per call: 8 MiB of records
ROUNDS = 15

# (codec, value bytes) -> check -> median seconds of this run
_MEDIANS: dict[tuple[str, int], dict[str, float]] = {}


def _producer_buffer(codec: str, value_bytes: int) -> tuple[bytes, int, int]:
    """BATCHES producer batches of about 1 MiB uncompressed: (buffer, records, bytes of
    uncompressed records sections)."""
    pool = data.payloads(value_bytes)
    parts, records, plain, i = [], 0, 0, 0
    for _ in range(BATCHES):
        b = BatchBuilder()
        while b.size_bytes < BATCH_UNCOMPRESSED:
            b.append(
                pool[i % len(pool)], key=b"user-%d" % (i % 5000), timestamp_ms=1_700_000_000_000
            )
            i += 1
        parts.append(b.build(codec))
        records += len(b)
        plain += b.size_bytes - 61
    return b"".join(parts), records, plain


def _decompress_whole(buf: bytes) -> int:
    """Every records section decompressed in one piece; returns the bytes made."""
    made, pos, mv = 0, 0, memoryview(buf)
    while pos < len(buf):
        size = int.from_bytes(buf[pos + 8 : pos + 12], "big") + 12
        codec = buf[pos + 22] & 7
        section = mv[pos + 61 : pos + size]
        made += len(codecs.decompress(codec, section)) if codec else len(section)
        pos += size
    return made


CASES = [
    (codec, size, check)
    for codec in ("lz4", "zstd", "none")
    for size in (100, 1024)
    for check in ("scan", "decompress", "walk")
    if codec != "none" or check != "decompress"
]


@pytest.mark.parametrize(("codec", "value_bytes", "check"), CASES)
def test_validate(benchmark: Any, codec: str, value_bytes: int, check: str) -> None:
    benchmark.group = f"validate {codec} batches of {value_bytes} B records"
    buf, records, plain = _producer_buffer(codec, value_bytes)
    fn = {
        "scan": lambda: scan_batches(buf),
        "decompress": lambda: _decompress_whole(buf),
        "walk": lambda: _native.validate_records(buf),
    }[check]
    result = benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    if check == "scan":
        assert result[:2] == (BATCHES, records)
    elif check == "decompress":
        assert result == plain
    else:
        assert result == (BATCHES, records, plain)
    stats = getattr(benchmark.stats, "stats", None)
    if stats is None:  # --benchmark-disable
        return
    median = stats.median
    seen = _MEDIANS.setdefault((codec, value_bytes), {})
    seen[check] = median
    info = {
        "uncompressed_MB": round(plain / 1e6, 1),
        "compressed_MB": round(len(buf) / 1e6, 2),
        "GB_per_s": round(plain / median / 1e9, 2),
        "ms_per_GB": round(median / (plain / 1e9) * 1e3, 1),
    }
    # validate_records runs after the scan (which it does not repeat): its whole time is
    # what the full check adds to the produce path.
    if check == "walk" and "scan" in seen:
        info["scan_plus_walk_over_scan"] = round((median + seen["scan"]) / seen["scan"], 1)
    if check == "walk" and "decompress" in seen:
        info["walk_over_decompress"] = round(median / seen["decompress"], 2)
    benchmark.extra_info.update(info)
