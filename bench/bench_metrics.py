"""What the broker's metrics cost per request, recorded and not, side by side in one run: the
calls a Produce request makes (``request`` from the dispatch, ``bytes_in`` from the produce
handler) and those a Fetch request makes (``request``, ``bytes_out``), on ``BrokerMetrics``
with ``enabled`` True and False.

Run: .venv-test/bin/python -m pytest bench/bench_metrics.py --benchmark-only

End to end the cost hides in the noise of this shared machine (``bench_broker_switches.py
metrics``); this gives it per request, which ``extra_info`` turns into a share of one core at
``EDPLOG_BENCH_REQUESTS_PER_S`` requests per second (default 1000: the producer sends one
request of about 7,000 100 B records per partition and linger, so 1.1 M rec/s are about 160
Produce requests/s, and ``bench_broker_switches.py metrics`` prints what it measured). Every
timed call's result is checked after it returns.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from edplog.metrics.registry import BrokerMetrics
from edplog.protocol import API_NAMES

CALLS = 20_000  # requests per timed call
ROUNDS = 15
REQUESTS_PER_S = float(os.environ.get("EDPLOG_BENCH_REQUESTS_PER_S", "1000"))
PRODUCE, FETCH = 0, 1  # Kafka API keys
TOPIC = "bench"
RECORD_BYTES = 1 << 20

# api -> enabled -> median seconds per request, this run
_PER_REQUEST: dict[str, dict[bool, float]] = {}


def produce_requests(metrics: BrokerMetrics, n: int) -> BrokerMetrics:
    request, bytes_in = metrics.request, metrics.bytes_in
    for _ in range(n):
        bytes_in(TOPIC, RECORD_BYTES)
        request(PRODUCE, 9, 0.0002)
    return metrics


def fetch_requests(metrics: BrokerMetrics, n: int) -> BrokerMetrics:
    request, bytes_out = metrics.request, metrics.bytes_out
    for _ in range(n):
        bytes_out(TOPIC, RECORD_BYTES)
        request(FETCH, 4, 0.0001)
    return metrics


def recorded(metrics: BrokerMetrics, api_key: int, version: int) -> float:
    labels = {"api": API_NAMES.get(api_key, str(api_key)), "version": str(version)}
    return metrics.registry.get_sample_value("edplog_requests_total", labels) or 0.0


@pytest.mark.parametrize("enabled", [False, True])
@pytest.mark.parametrize("api", ["produce", "fetch"])
def test_record_request_metrics(benchmark: Any, api: str, enabled: bool) -> None:
    benchmark.group = f"record one {api.capitalize()} request's metrics"
    metrics = BrokerMetrics(enabled=enabled)
    work, key, version = {
        "produce": (produce_requests, PRODUCE, 9),
        "fetch": (fetch_requests, FETCH, 4),
    }[api]
    benchmark.pedantic(work, args=(metrics, CALLS), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    calls = recorded(metrics, key, version)
    moved = "edplog_bytes_in_total" if api == "produce" else "edplog_bytes_out_total"
    moved_bytes = metrics.registry.get_sample_value(moved, {"topic": TOPIC}) or 0.0
    if enabled:
        assert calls > 0 and calls % CALLS == 0
        assert moved_bytes == calls * RECORD_BYTES
    else:
        assert (calls, moved_bytes) == (0.0, 0.0)
    stats = getattr(benchmark.stats, "stats", None)
    if stats is None:  # --benchmark-disable
        return
    per_request = stats.median / CALLS
    seen = _PER_REQUEST.setdefault(api, {})
    seen[enabled] = per_request
    info = {"ns_per_request": round(per_request * 1e9)}
    if enabled and False in seen:
        added = per_request - seen[False]
        info["added_ns_per_request"] = round(added * 1e9)
        info["core_share_at_requests_per_s"] = REQUESTS_PER_S
        info["core_percent"] = round(added * REQUESTS_PER_S * 100, 4)
    benchmark.extra_info.update(info)
