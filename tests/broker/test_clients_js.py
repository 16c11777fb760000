"""JavaScript clients nobody here wrote, against the broker: kafkajs and @platformatic/kafka.

Each test runs one application flow in Node (tests/js/*.mjs: create a topic, produce keyed
records, consume them in a consumer group committing as it goes, read the commits back) and
checks what the client saw. The packages are pinned in tests/js/package-lock.json and installed
by scripts/test with ``npm ci``; run outside it, the tests skip unless EDPLOG_REQUIRE_JS=1
(which scripts/test sets, so CI cannot skip them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.clients

JS = Path(__file__).resolve().parents[1] / "js"


def _node_flow(script: str, *args: str) -> dict[str, Any]:
    node = shutil.which("node")
    installed = (JS / "node_modules" / ".package-lock.json").exists()
    if node is None or not installed:
        if os.environ.get("EDPLOG_REQUIRE_JS") == "1":
            pytest.fail(f"node ({node}) or tests/js/node_modules missing: run scripts/test")
        pytest.skip("node or tests/js/node_modules missing (scripts/test installs them)")
    done = subprocess.run(
        [node, str(JS / script), *args], cwd=JS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check_delivery(got: dict[str, Any], count: int) -> None:
    """Every record produced was seen exactly once, with its value, in offset order per
    partition, and the group's committed offset of each partition is its record count."""
    seen = got["seen"]
    assert sorted(m["key"] for m in seen) == sorted(f"k{i}" for i in range(count))
    assert all(m["value"] == "v" + m["key"][1:] for m in seen)
    per_partition = Counter(m["partition"] for m in seen)
    for partition, n in per_partition.items():
        offsets = [m["offset"] for m in seen if m["partition"] == partition]
        assert offsets == list(range(n)), partition
    committed = {c["partition"]: c["offset"] for c in got["committed"]}
    assert {p: committed.get(p) for p in per_partition} == dict(per_partition)


def test_kafkajs_admin_idempotent_gzip_producer_and_consumer_group(kafka_broker: str) -> None:
    """Tried: kafkajs 2.2 creating a 3-partition topic, an idempotent producer sending half
    the records plain and half gzip-compressed with acks=-1, a consumer group committing each
    message, describeGroups and listGroups. Must hold: delivery is exact (see _check_delivery),
    the group is Stable with one member while it consumes, and it is listed."""
    got = _node_flow("kafkajs_flow.mjs", kafka_broker, "js-kafkajs", "200")
    assert got["created"] is True and got["partitions"] == 3
    _check_delivery(got, 200)
    assert got["group"] == {"state": "Stable", "protocolType": "consumer", "members": 1}
    assert "js-kafkajs-group" in got["listed"]


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_platformatic_kafka_runs_consumer_groups(kafka_broker: str, protocol: str) -> None:
    """Tried: @platformatic/kafka, which implements only recent versions (FindCoordinator v4+,
    OffsetCommit/OffsetFetch v8+, Fetch v13+ by topic id, Metadata v9+), producing with
    acks=all and consuming in a group of each protocol (classic, and KIP-848's consumer
    protocol) with a commit per message. Must hold: delivery is exact."""
    topic = f"js-platformatic-{protocol}"
    got = _node_flow("platformatic_flow.mjs", kafka_broker, topic, "200", protocol)
    assert got["partitions"] == 3
    _check_delivery(got, 200)


def test_a_kafkajs_transactional_producer_fails_at_once(kafka_broker: str) -> None:
    """Tried: a kafkajs transactional producer starting a transaction (transactions are not
    served yet), allowed 10 retries (over a minute of backoff). Must hold: it fails within
    seconds with a non-retriable error of the broker's answer, not after its retries."""
    got = _node_flow("kafkajs_transaction.mjs", kafka_broker)
    assert got["error"] is not None and got["error"]["retriable"] is False, got
    assert got["error"]["name"] != "KafkaJSNumberOfRetriesExceeded", got
    assert got["seconds"] < 10, got
