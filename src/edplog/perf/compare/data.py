"""The bytes every workload moves: JSON-like event payloads and RecordBatch v2 buffers of them.

Payloads vary (a pool of distinct events from a fixed seed) so that lz4 on the broker path
compresses them the way it would compress real events, not a run of identical bytes. The raw
``os.write`` limit and ``Log.append_batches`` are fed the *same* batch buffer, so their ratio
compares the write paths and nothing else.
"""

from __future__ import annotations

import random
from functools import lru_cache

BATCH_BYTES = 256 << 10  # one RecordBatch: perf.md goal 1 uses 256 KiB - 1 MiB batches
BUFFER_BYTES = 1 << 20  # one os.write / one append_batches call


@lru_cache(maxsize=8)
def payloads(size: int, count: int = 4096) -> tuple[bytes, ...]:
    """``count`` distinct event payloads of exactly ``size`` bytes (deterministic)."""
    rng = random.Random(size * 7919 + count)
    events = ("click", "view", "purchase", "signup", "logout", "search")
    paths = ("/", "/cart", "/item", "/search", "/account", "/help", "/checkout")
    out = []
    for _ in range(count):
        head = (
            f'{{"u":{rng.randrange(5000)},"e":"{rng.choice(events)}",'
            f'"p":"{rng.choice(paths)}","s":"{rng.getrandbits(64):016x}",'
            f'"a":{rng.random() * 500:.2f},"x":"'
        ).encode()
        tail = b'"}'
        fill = max(0, size - len(head) - len(tail))
        body = head + rng.randbytes((fill + 1) // 2).hex().encode()[:fill] + tail
        out.append(body[-size:])
    return tuple(out)


@lru_cache(maxsize=4)
def batch_buffer(size: int) -> tuple[bytes, int]:
    """About 1 MiB of uncompressed v2 batches of ``size``-byte records: (buffer, record count).

    Falls back to the bare payloads if the native extension cannot be loaded, so the raw
    limits still run while the extension is being rebuilt.
    """
    pool = payloads(size)
    try:
        from edplog._native import BatchBuilder
    except ImportError:
        n = BUFFER_BYTES // size
        return b"".join(pool[i % len(pool)] for i in range(n)), n
    parts: list[bytes] = []
    total = records = 0
    i = 0
    while total < BUFFER_BYTES:
        builder = BatchBuilder()
        while builder.size_bytes < BATCH_BYTES:
            builder.append(pool[i % len(pool)], timestamp_ms=1_700_000_000_000)
            i += 1
        batch = builder.build()
        parts.append(batch)
        total += len(batch)
        records += len(builder)
    return b"".join(parts), records
