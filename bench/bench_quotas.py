"""What client quotas cost per request, side by side in one run: Produce requests (acks=1,
one small batch) dispatched through a real broker's dispatch with no quota manager, with
one and no quota set (the case every broker is in until an operator sets one), and with a
quota set that the request's client must be measured against.

Run: .venv-test/bin/python -m pytest bench/bench_quotas.py --benchmark-only

``extra_info`` gives each case's ns per request and, for the quota cases, the ratio to the
case without a quota manager in the same run. Every timed call's result is checked after it
returns (each request appended its batch).
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import pytest

from edplog._native import BatchBuilder
from edplog.broker.broker import Broker
from edplog.broker.config import BrokerConfig
from edplog.broker.context import RequestContext
from edplog.broker.quotas import PRODUCE
from edplog.protocol import encode_request

CALLS = 5_000  # requests per timed call
ROUNDS = 9
TOPIC = "bench"

_PER_REQUEST: dict[str, float] = {}


@pytest.fixture(scope="module")
def running() -> Any:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    config = BrokerConfig(data_dir=tempfile.mkdtemp(prefix="bench-quotas-"), port=0)
    broker = Broker(config)
    loop.run_until_complete(broker.start())
    assert broker.store is not None
    broker.store.create_topic(TOPIC, 1)
    assert broker.services is not None and broker.services.quotas is not None
    yield loop, broker, broker.services.quotas
    loop.run_until_complete(broker.stop())
    loop.close()


def _frame() -> memoryview:
    b = BatchBuilder()
    b.append(b"v" * 100)
    body = {
        "transactional_id": None,
        "acks": 1,
        "timeout_ms": 5000,
        "topic_data": [{"name": TOPIC, "partition_data": [{"index": 0, "records": b.build()}]}],
    }
    return memoryview(encode_request(0, 9, 1, "bench-client", body))[4:]


def _dispatch_many(loop: asyncio.AbstractEventLoop, broker: Broker, n: int) -> int:
    assert broker.server is not None
    dispatcher = broker.server.dispatcher
    frame = _frame()

    async def run() -> int:
        answered = 0
        for _ in range(n):
            pending = dispatcher.dispatch(frame, RequestContext)
            assert pending is not None and pending.body is not None
            answered += pending.body["responses"][0]["partition_responses"][0]["error_code"] == 0
        return answered

    return loop.run_until_complete(run())


@pytest.mark.parametrize("case", ["no manager", "no quota set", "quota applies"])
def test_dispatch_produce_with_quotas(benchmark: Any, running: Any, case: str) -> None:
    loop, broker, manager = running
    benchmark.group = "dispatch one Produce request (acks=1)"
    services = broker.services
    assert services is not None
    if case == "quota applies":
        manager.quotas.values = {(("client-id", "bench-client"),): {PRODUCE: 1e15}}
        manager.quotas.version += 1
    else:
        manager.quotas.values = {}
    services.quotas = None if case == "no manager" else manager
    answered = benchmark.pedantic(
        _dispatch_many, args=(loop, broker, CALLS), rounds=ROUNDS, iterations=1, warmup_rounds=1
    )
    assert answered == CALLS
    if case == "quota applies":
        _, _, quota = manager.quota_for(PRODUCE, "ANONYMOUS", "bench-client")
        assert quota == 1e15
    stats = getattr(benchmark.stats, "stats", None)
    if stats is None:  # --benchmark-disable
        return
    per_request = stats.median / CALLS
    _PER_REQUEST[case] = per_request
    info: dict[str, Any] = {"ns_per_request": round(per_request * 1e9)}
    if case != "no manager" and "no manager" in _PER_REQUEST:
        info["ratio_to_no_manager"] = round(per_request / _PER_REQUEST["no manager"], 4)
    benchmark.extra_info.update(info)
