"""KIP-227 fetch sessions and Fetch v13+ topic ids against a real broker, over real sockets
with the internal client in explicit versions: Kafka's rules for what an incremental response
holds, the epoch and session errors, the bounded cache and its eviction preference, and long
polls on a session's partitions."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

import pytest
from broker_helpers import RawClient, batch
from prometheus_client import generate_latest

from edplog.broker import BrokerConfig
from edplog.client import scan_records
from edplog.errors import ErrorCode, InvalidConfigError

FETCH, METADATA, DELETE_TOPICS = 1, 3, 20
V = 16  # what librdkafka sends


def _topic_ids(c: RawClient, *names: str) -> dict[str, uuid.UUID]:
    """Create ``names`` by Metadata auto-creation and return their topic ids."""
    body = {
        "topics": [{"name": n, "topic_id": uuid.UUID(int=0)} for n in names],
        "allow_auto_topic_creation": True,
        "include_topic_authorized_operations": False,
    }
    resp = c.call(METADATA, 12, body)
    ids = {t["name"]: t["topic_id"] for t in resp["topics"]}
    assert all(t["error_code"] == 0 for t in resp["topics"]), resp["topics"]
    return ids


def _req(
    topics: dict[uuid.UUID, dict[int, int]],
    session_id: int = 0,
    epoch: int = -1,
    forgotten: dict[uuid.UUID, list[int]] | None = None,
    max_wait_ms: int = 0,
    replica_id: int = -1,
) -> dict[str, Any]:
    return {
        "replica_id": replica_id,
        "replica_state": {"replica_id": replica_id, "replica_epoch": -1},
        "max_wait_ms": max_wait_ms,
        "min_bytes": 1,
        "max_bytes": 1 << 20,
        "isolation_level": 0,
        "session_id": session_id,
        "session_epoch": epoch,
        "topics": [
            {
                "topic_id": tid,
                "partitions": [
                    {"partition": p, "fetch_offset": off, "partition_max_bytes": 1 << 20}
                    for p, off in parts.items()
                ],
            }
            for tid, parts in topics.items()
        ],
        "forgotten_topics_data": [
            {"topic_id": tid, "partitions": ps} for tid, ps in (forgotten or {}).items()
        ],
        "rack_id": "",
    }


def _parts(resp: dict[str, Any]) -> dict[tuple[uuid.UUID, int], dict[str, Any]]:
    return {
        (t["topic_id"], p["partition_index"]): p for t in resp["responses"] for p in t["partitions"]
    }


def _produce(c: RawClient, topic: str, partition: int, n: int = 1) -> None:
    c.produce(topic, partition, batch([b"v%d" % i for i in range(n)]))


def _scrape(broker: Any) -> str:
    return generate_latest(broker.broker.metrics.registry).decode()


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the scrape")


def test_incremental_fetch_carries_only_partitions_with_news(kafka_broker_factory: Any) -> None:
    """Eight partitions with a record each: a full fetch (epoch 0) returns all eight and opens
    a session; incremental fetches then return only what changed — nothing while idle, the one
    partition a producer wrote to (records and new high watermark), and nothing once the
    client has caught up on it."""
    broker = kafka_broker_factory(num_partitions=8)
    with RawClient(broker.bootstrap) as c:
        tid = _topic_ids(c, "s8")["s8"]
        for p in range(8):
            _produce(c, "s8", p)
        full = c.call(FETCH, V, _req({tid: dict.fromkeys(range(8), 0)}, 0, 0))
        assert full["error_code"] == 0 and full["session_id"] > 0
        got = _parts(full)
        assert sorted(p for _, p in got) == list(range(8))
        assert all(r["records"] and r["high_watermark"] == 1 for r in got.values())
        sid = full["session_id"]
        moved = c.call(FETCH, V, _req({tid: dict.fromkeys(range(8), 1)}, sid, 1))
        assert moved["error_code"] == 0 and moved["session_id"] == sid
        assert moved["responses"] == []
        idle = c.call(FETCH, V, _req({}, sid, 2))
        assert idle["responses"] == []
        _produce(c, "s8", 3, n=2)
        news = c.call(FETCH, V, _req({}, sid, 3))
        got = _parts(news)
        assert list(got) == [(tid, 3)]
        assert got[(tid, 3)]["high_watermark"] == 3 and got[(tid, 3)]["records"]
        caught_up = c.call(FETCH, V, _req({tid: {3: 3}}, sid, 4))
        assert caught_up["responses"] == []


def test_forgotten_partitions_leave_the_session_and_new_ones_join(
    kafka_broker_factory: Any,
) -> None:
    """An incremental fetch forgets partition 1 and adds partition 2: records later written to
    partition 1 are not returned, partition 2 is returned at once (its state was never sent)."""
    broker = kafka_broker_factory(num_partitions=3)
    with RawClient(broker.bootstrap) as c:
        tid = _topic_ids(c, "fg")["fg"]
        full = c.call(FETCH, V, _req({tid: {0: 0, 1: 0}}, 0, 0))
        sid = full["session_id"]
        assert sid > 0 and len(_parts(full)) == 2
        inc = c.call(FETCH, V, _req({tid: {2: 0}}, sid, 1, forgotten={tid: [1]}))
        assert list(_parts(inc)) == [(tid, 2)]
        _produce(c, "fg", 1)
        assert c.call(FETCH, V, _req({}, sid, 2))["responses"] == []
        _produce(c, "fg", 2)
        assert list(_parts(c.call(FETCH, V, _req({}, sid, 3)))) == [(tid, 2)]


def test_session_epoch_and_id_errors(kafka_broker_factory: Any) -> None:
    """A wrong epoch gives INVALID_FETCH_SESSION_EPOCH, an unknown id
    FETCH_SESSION_ID_NOT_FOUND, a v12 continuation of a topic-id session
    FETCH_SESSION_TOPIC_ID_ERROR (each with no partitions and session 0); epoch -1 closes the
    session (answered as a sessionless full fetch) and it is then not found."""
    broker = kafka_broker_factory(num_partitions=1)
    with RawClient(broker.bootstrap) as c:
        tid = _topic_ids(c, "ep")["ep"]
        sid = c.call(FETCH, V, _req({tid: {0: 0}}, 0, 0))["session_id"]
        assert sid > 0
        bad = c.call(FETCH, V, _req({}, sid, 5))
        assert bad["error_code"] == ErrorCode.INVALID_FETCH_SESSION_EPOCH
        assert bad["responses"] == [] and bad["session_id"] == 0
        unknown = c.call(FETCH, V, _req({}, sid ^ 0x5A5A, 1))
        assert unknown["error_code"] == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
        v12 = {"topic": "ep", "partitions": []}
        old = c.call(FETCH, 12, {**_req({}, sid, 1), "topics": [v12]})
        assert old["error_code"] == ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR
        assert c.call(FETCH, V, _req({}, sid, 1))["error_code"] == 0  # epoch 1 still valid
        closed = c.call(FETCH, V, _req({tid: {0: 0}}, sid, -1))
        assert closed["error_code"] == 0 and closed["session_id"] == 0
        assert len(_parts(closed)) == 1
        gone = c.call(FETCH, V, _req({}, sid, 2))
        assert gone["error_code"] == ErrorCode.FETCH_SESSION_ID_NOT_FOUND


def test_unknown_and_deleted_topic_ids_answer_unknown_topic_id(kafka_broker_factory: Any) -> None:
    """A full fetch of a made-up topic id gets UNKNOWN_TOPIC_ID for it (and data for the real
    one); once a session's topic is deleted, the next incremental fetch reports it
    UNKNOWN_TOPIC_ID."""
    broker = kafka_broker_factory(num_partitions=1)
    with RawClient(broker.bootstrap) as c:
        ids = _topic_ids(c, "keep", "doomed")
        made_up = uuid.uuid4()
        _produce(c, "keep", 0)
        resp = c.call(FETCH, V, _req({ids["keep"]: {0: 0}, made_up: {0: 0}}, 0, 0))
        got = _parts(resp)
        assert got[(made_up, 0)]["error_code"] == ErrorCode.UNKNOWN_TOPIC_ID
        assert got[(ids["keep"], 0)]["error_code"] == 0 and got[(ids["keep"], 0)]["records"]
        sid = c.call(FETCH, V, _req({ids["doomed"]: {0: 0}}, 0, 0))["session_id"]
        deleted = c.call(DELETE_TOPICS, 4, {"topic_names": ["doomed"], "timeout_ms": 10_000})
        assert deleted["responses"][0]["error_code"] == 0
        after = _parts(c.call(FETCH, V, _req({}, sid, 1)))
        assert after[(ids["doomed"], 0)]["error_code"] == ErrorCode.UNKNOWN_TOPIC_ID


def test_cache_bound_and_kafka_eviction_preference(kafka_broker_factory: Any) -> None:
    """With one slot and a 1 s eviction time: a second consumer session of the same size is
    refused (session 0) while the first is fresh; a follower's session evicts a consumer's at
    once; once the follower's session is older than the eviction time but still in use, a
    consumer's larger session still does not evict it (followers are worth more), but a stale
    one (idle past the eviction time) is evicted by anyone. The metrics count it all."""
    broker = kafka_broker_factory(
        num_partitions=4,
        max_incremental_fetch_session_cache_slots=1,
        min_incremental_fetch_session_eviction_ms=1000,
    )
    with RawClient(broker.bootstrap) as c:
        tid = _topic_ids(c, "ev")["ev"]
        first = c.call(FETCH, V, _req({tid: {0: 0}}, 0, 0))["session_id"]
        assert first > 0
        assert c.call(FETCH, V, _req({tid: {1: 0}}, 0, 0))["session_id"] == 0
        follower = c.call(FETCH, V, _req({tid: {2: 0}}, 0, 0, replica_id=1))["session_id"]
        assert follower > 0
        assert c.call(FETCH, V, _req({}, first, 1))["error_code"] == (
            ErrorCode.FETCH_SESSION_ID_NOT_FOUND
        )
        text = _scrape(broker)
        assert _metric(text, "edplog_fetch_sessions") == 1
        assert _metric(text, "edplog_fetch_sessions_evicted_total") == 1
        time.sleep(1.2)
        epoch = 1
        assert c.call(FETCH, V, _req({}, follower, epoch, replica_id=1))["error_code"] == 0
        big = {tid: dict.fromkeys(range(4), 0)}
        assert c.call(FETCH, V, _req(big, 0, 0))["session_id"] == 0
        time.sleep(1.2)  # now the follower's session is stale
        stale_winner = c.call(FETCH, V, _req({tid: {0: 0}}, 0, 0))["session_id"]
        assert stale_winner > 0
        gone = c.call(FETCH, V, _req({}, follower, epoch + 1, replica_id=1))
        assert gone["error_code"] == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
        text = _scrape(broker)
        assert _metric(text, "edplog_fetch_sessions") == 1
        assert _metric(text, "edplog_fetch_sessions_partitions") == 1
        assert _metric(text, "edplog_fetch_sessions_evicted_total") == 2


def test_larger_session_evicts_a_settled_smaller_one(kafka_broker_factory: Any) -> None:
    """One slot, 1 s eviction: a consumer session of one partition, kept in use, is evicted
    after it is older than the eviction time by a consumer session of four partitions (but not
    by one of one partition); a fresh session is never evicted by a consumer's."""
    broker = kafka_broker_factory(
        num_partitions=4,
        max_incremental_fetch_session_cache_slots=1,
        min_incremental_fetch_session_eviction_ms=1000,
    )
    with RawClient(broker.bootstrap) as c:
        tid = _topic_ids(c, "lg")["lg"]
        small = c.call(FETCH, V, _req({tid: {0: 0}}, 0, 0))["session_id"]
        big = {tid: dict.fromkeys(range(4), 0)}
        assert c.call(FETCH, V, _req(big, 0, 0))["session_id"] == 0  # small is fresh
        time.sleep(1.2)
        assert c.call(FETCH, V, _req({}, small, 1))["error_code"] == 0  # in use, not stale
        assert c.call(FETCH, V, _req({tid: {1: 0}}, 0, 0))["session_id"] == 0
        assert c.call(FETCH, V, _req(big, 0, 0))["session_id"] > 0
        gone = c.call(FETCH, V, _req({}, small, 2))
        assert gone["error_code"] == ErrorCode.FETCH_SESSION_ID_NOT_FOUND


def test_session_long_poll_wakes_on_a_write_to_any_session_partition(
    kafka_broker_factory: Any,
) -> None:
    """An incremental fetch that names no partition parks (max_wait 8 s); a producer on
    another connection writes to the session's last partition after 0.3 s: the fetch returns
    that partition's records well before the wait ends, and the session keeps going after
    many producer writes (each later incremental fetch returns exactly what was written)."""
    broker = kafka_broker_factory(num_partitions=6)
    with RawClient(broker.bootstrap) as c, RawClient(broker.bootstrap) as producer:
        tid = _topic_ids(c, "lp")["lp"]
        sid = c.call(FETCH, V, _req({tid: dict.fromkeys(range(6), 0)}, 0, 0))["session_id"]
        assert sid > 0
        timer = threading.Timer(0.3, _produce, (producer, "lp", 5))
        started = time.monotonic()
        timer.start()
        try:
            woke = c.call(FETCH, V, _req({}, sid, 1, max_wait_ms=8000))
        finally:
            timer.join()
        assert time.monotonic() - started < 6.0
        got = _parts(woke)
        assert list(got) == [(tid, 5)] and got[(tid, 5)]["records"]
        offsets = dict.fromkeys(range(6), 0)
        offsets[5] = 1
        epoch = 2
        for round_ in range(20):
            p = round_ % 6
            _produce(producer, "lp", p)
            resp = c.call(FETCH, V, _req({tid: {5: offsets[5]}} if round_ == 0 else {}, sid, epoch))
            epoch += 1
            got = _parts(resp)
            assert list(got) == [(tid, p)], (round_, list(got))
            # tell the broker the new position (an incremental fetch with just that partition)
            offsets[p] += 1
            assert c.call(FETCH, V, _req({tid: {p: offsets[p]}}, sid, epoch))["responses"] == []
            epoch += 1


def test_name_keyed_sessions_before_v13(kafka_broker_factory: Any) -> None:
    """Fetch v12 (topics by name, as kafka-python sends): epoch 0 opens a session, the
    incremental response carries only the partition written to, by topic name."""
    broker = kafka_broker_factory(num_partitions=4)
    with RawClient(broker.bootstrap) as c:
        _topic_ids(c, "named")

        def req(parts: dict[int, int], sid: int, epoch: int) -> dict[str, Any]:
            body = _req({}, sid, epoch)
            body["topics"] = [
                {
                    "topic": "named",
                    "partitions": [
                        {"partition": p, "fetch_offset": o, "partition_max_bytes": 1 << 20}
                        for p, o in parts.items()
                    ],
                }
            ]
            return body

        full = c.call(FETCH, 12, req(dict.fromkeys(range(4), 0), 0, 0))
        sid = full["session_id"]
        assert sid > 0 and sum(len(t["partitions"]) for t in full["responses"]) == 4
        _produce(c, "named", 2)
        inc = c.call(FETCH, 12, {**req({}, sid, 1), "topics": []})
        assert [
            (t["topic"], [p["partition_index"] for p in t["partitions"]]) for t in inc["responses"]
        ] == [("named", [2])]


def test_zero_cache_slots_turns_sessions_off(kafka_broker_factory: Any) -> None:
    """max.incremental.fetch.session.cache.slots=0: a full fetch asking for a session is
    served in full with session 0, and the cache stays empty."""
    broker = kafka_broker_factory(num_partitions=2, max_incremental_fetch_session_cache_slots=0)
    with RawClient(broker.bootstrap) as c:
        tid = _topic_ids(c, "off")["off"]
        resp = c.call(FETCH, V, _req({tid: {0: 0, 1: 0}}, 0, 0))
        assert resp["error_code"] == 0 and resp["session_id"] == 0
        assert len(_parts(resp)) == 2
        assert _metric(_scrape(broker), "edplog_fetch_sessions") == 0


def test_bad_session_cache_settings_are_refused() -> None:
    """A negative or non-numeric cache size or eviction time stops the configuration."""
    for key, value in (
        ("max.incremental.fetch.session.cache.slots", "-1"),
        ("max.incremental.fetch.session.cache.slots", "many"),
        ("min.incremental.fetch.session.eviction.ms", "-5"),
    ):
        with pytest.raises(InvalidConfigError):
            BrokerConfig.from_properties({key: value})
    config = BrokerConfig.from_properties(
        {
            "max.incremental.fetch.session.cache.slots": "7",
            "min.incremental.fetch.session.eviction.ms": "250",
        }
    )
    assert (config.fetch_session_cache_slots, config.fetch_session_eviction_ms) == (7, 250)


def test_incremental_view_matches_full_fetches_under_random_writes(
    kafka_broker_factory: Any,
) -> None:
    """A seeded random walk over 10 partitions: writes of 0-3 batches to random partitions,
    then an incremental fetch whose request names only the partitions the consumer moved.
    The consumer's view built from incremental responses (high watermark per partition, and
    every record offset received) must equal what sessionless full fetches report, and every
    partition with new records must be in the incremental response."""
    rng = random.Random(227)
    n = 10
    broker = kafka_broker_factory(num_partitions=n)
    with RawClient(broker.bootstrap) as c, RawClient(broker.bootstrap) as producer:
        tid = _topic_ids(c, "walk")["walk"]
        offsets = dict.fromkeys(range(n), 0)
        hws = dict.fromkeys(range(n), -1)
        full = c.call(FETCH, V, _req({tid: dict(offsets)}, 0, 0))
        sid, epoch = full["session_id"], 1
        assert sid > 0
        for p, r in ((p, r) for (_, p), r in _parts(full).items()):
            hws[p] = r["high_watermark"]
        moved: dict[int, int] = {}
        for _ in range(40):
            written = set()
            for _ in range(rng.randint(0, 3)):
                p = rng.randrange(n)
                _produce(producer, "walk", p, n=rng.randint(1, 3))
                written.add(p)
            resp = c.call(FETCH, V, _req({tid: moved} if moved else {}, sid, epoch))
            assert resp["error_code"] == 0 and resp["session_id"] == sid
            epoch += 1
            got = _parts(resp)
            assert written <= {p for _, p in got}, (written, list(got))
            moved = {}
            for (_, p), r in got.items():
                hws[p] = r["high_watermark"]
                last = scan_records(r["records"] or b"").last_offset
                if last >= offsets[p]:
                    offsets[p] = last + 1
                    moved[p] = offsets[p]
            truth = _parts(c.call(FETCH, V, _req({tid: dict.fromkeys(range(n), 0)})))
            assert hws == {p: r["high_watermark"] for (_, p), r in truth.items()}
        # a last round hands the final positions over: everything was received
        c.call(FETCH, V, _req({tid: moved} if moved else {}, sid, epoch))
        assert offsets == hws
