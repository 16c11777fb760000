"""Committed offsets: fencing, per-partition validation, the record layout and replay."""

from __future__ import annotations

import asyncio
import struct

from group_helpers import (
    TempStore,
    commit_errors,
    commit_req,
    fetch_req,
    fetched,
    hb_req,
    join_req,
    make_coord,
    settle,
    sync_req,
)
from hypothesis import given
from hypothesis import strategies as st

from edplog.group.offsets import (
    OFFSETS_TOPIC,
    CommittedOffset,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
    java_string_hash,
)


def _store() -> TempStore:
    store = TempStore()
    store.create_topic("orders", 3)
    store.create_topic("audit", 1)
    return store


def test_commit_and_fetch_round_trip_offset_epoch_and_metadata() -> None:
    async def main() -> None:
        coord = make_coord(_store())
        await coord.start()
        req = commit_req("app", {("orders", 0): 10, ("orders", 2): 7}, metadata="m", leader_epoch=4)
        assert set(commit_errors(await coord.offset_commit(req, 8)).values()) == {0}
        got = fetched(await coord.offset_fetch(fetch_req("app", {"orders": [0, 1, 2]}), 7))
        assert got == {
            ("orders", 0): (10, 4, "m"),
            ("orders", 1): (-1, -1, ""),
            ("orders", 2): (7, 4, "m"),
        }
        everything = fetched(await coord.offset_fetch(fetch_req("app"), 7))
        assert everything == {("orders", 0): (10, 4, "m"), ("orders", 2): (7, 4, "m")}
        unknown_group = fetched(await coord.offset_fetch(fetch_req("other", {"orders": [0]}), 7))
        assert unknown_group == {("orders", 0): (-1, -1, "")}
        # Null metadata is stored as the empty string, as Kafka does; v5 carries no epoch.
        await coord.offset_commit(commit_req("app", {("audit", 0): 3}, metadata=None), 5)
        assert fetched(await coord.offset_fetch(fetch_req("app", {"audit": [0]}), 7)) == {
            ("audit", 0): (3, -1, "")
        }
        await coord.close()

    asyncio.run(main())


def test_commit_to_unknown_topic_or_partition_fails_per_partition() -> None:
    async def main() -> None:
        coord = make_coord(_store())
        await coord.start()
        req = commit_req("app", {("orders", 1): 5, ("orders", 3): 5, ("nope", 0): 5})
        errors = commit_errors(await coord.offset_commit(req, 8))
        assert errors == {("orders", 1): 0, ("orders", 3): 3, ("nope", 0): 3}
        assert fetched(await coord.offset_fetch(fetch_req("app"), 7)) == {
            ("orders", 1): (5, -1, "")
        }
        await coord.close()

    asyncio.run(main())


def test_oversized_metadata_is_refused() -> None:
    async def main() -> None:
        coord = make_coord(_store(), offset_metadata_max_bytes=8)
        await coord.start()
        ok = await coord.offset_commit(
            commit_req("app", {("orders", 0): 1}, metadata="12345678"), 8
        )
        big = await coord.offset_commit(
            commit_req("app", {("orders", 1): 1}, metadata="123456789"), 8
        )
        assert commit_errors(ok) == {("orders", 0): 0}
        assert commit_errors(big) == {("orders", 1): 12}
        await coord.close()

    asyncio.run(main())


def test_commits_are_fenced_by_generation_and_member() -> None:
    async def main() -> None:
        coord = make_coord(_store())
        await coord.start()
        a = await coord.join_group(join_req("app"), 3)
        a_id = a["member_id"]
        # CompletingRebalance: a commit must wait until the assignment is known.
        early = commit_req("app", {("orders", 0): 1}, generation=1, member_id=a_id)
        assert commit_errors(await coord.offset_commit(early, 8)) == {("orders", 0): 27}
        await coord.sync_group(sync_req("app", a_id, 1, {a_id: b""}), 3)
        tp = {("orders", 0): 5}
        cases = [
            (commit_req("app", tp, generation=1, member_id=a_id), 0),
            (commit_req("app", tp, generation=0, member_id=a_id), 22),
            (commit_req("app", tp, generation=1, member_id="ghost"), 25),
            (commit_req("app", tp), 25),  # a standalone commit while the group has members
            (commit_req("fresh", tp, generation=3, member_id="x"), 22),
            (commit_req("solo", tp), 0),  # a standalone group is created on the fly
        ]
        for req, expected in cases:
            assert commit_errors(await coord.offset_commit(req, 8)) == {("orders", 0): expected}
        # A commit during PreparingRebalance with the current generation is still accepted.
        joiner = asyncio.create_task(coord.join_group(join_req("app"), 3))
        await settle()
        assert (await coord.heartbeat(hb_req("app", a_id, 1), 3))["error_code"] == 27
        late = commit_req("app", {("orders", 0): 6}, generation=1, member_id=a_id)
        assert commit_errors(await coord.offset_commit(late, 8)) == {("orders", 0): 0}
        await coord.close()
        assert (await asyncio.wait_for(joiner, 5))["error_code"] == 16
        assert fetched(await coord.offset_fetch(fetch_req("app"), 7)) == {
            ("orders", 0): (6, -1, "")
        }

    asyncio.run(main())


def test_offsets_are_replayed_after_reopen_and_tombstones_delete_them() -> None:
    async def main() -> None:
        store = _store()
        coord = make_coord(store, offsets_topic_partitions=4)
        await coord.start()
        for group in ("a", "b"):
            await coord.offset_commit(commit_req(group, {("orders", 0): 1}), 8)
            await coord.offset_commit(commit_req(group, {("orders", 0): 9, ("audit", 0): 2}), 8)
        assert (await coord.delete_groups({"groups_names": ["a"]}, 2))["results"][0][
            "error_code"
        ] == 0
        await coord.close()
        tombstones = [
            r
            for p in range(4)
            for r in store.log(OFFSETS_TOPIC, p).read(0)
            if r.value is None and decode_key(r.key)[0] == "a"
        ]
        assert sorted(decode_key(r.key)[1:] for r in tombstones) == [("audit", 0), ("orders", 0)]
        assert store.topic_config(OFFSETS_TOPIC) == {"cleanup.policy": "compact"}

        reopened = make_coord(store.reopen(), offsets_topic_partitions=1)
        await reopened.start()
        assert reopened.offsets.partitions == 4, "an existing offsets topic keeps its layout"
        assert fetched(await reopened.offset_fetch(fetch_req("a"), 7)) == {}
        assert fetched(await reopened.offset_fetch(fetch_req("b"), 7)) == {
            ("audit", 0): (2, -1, ""),
            ("orders", 0): (9, -1, ""),
        }
        listed = await reopened.list_groups({}, 4)
        assert [(g["group_id"], g["group_state"]) for g in listed["groups"]] == [("b", "Empty")]
        await reopened.close()

    asyncio.run(main())


def test_replay_skips_foreign_and_damaged_records() -> None:
    async def main() -> None:
        store = _store()
        store.create_topic(OFFSETS_TOPIC, 1)
        log = store.log(OFFSETS_TOPIC, 0)
        good = CommittedOffset(5, 1, "x", 123)
        log.append(encode_value(good), key=encode_key("g", "orders", 0))
        log.append(b"\x00\x03" + b"\x00" * 20, key=struct.pack(">h", 2) + b"\x00\x01g")
        log.append(b"\x00\x09junk", key=encode_key("g", "orders", 1))
        log.append(b"\x00\x03\x00", key=encode_key("g", "orders", 2))
        log.append(b"whatever", key=None)
        log.flush()
        coord = make_coord(store)
        await coord.start()
        assert fetched(await coord.offset_fetch(fetch_req("g"), 7)) == {("orders", 0): (5, 1, "x")}
        await coord.close()

    asyncio.run(main())


def test_delete_groups_refuses_active_and_unknown_groups() -> None:
    async def main() -> None:
        coord = make_coord(_store())
        await coord.start()
        a = await coord.join_group(join_req("busy"), 3)
        await coord.offset_commit(commit_req("idle", {("orders", 0): 1}), 8)
        resp = await coord.delete_groups({"groups_names": ["busy", "idle", "ghost", ""]}, 2)
        assert [r["error_code"] for r in resp["results"]] == [68, 0, 69, 24]
        await coord.leave_group({"group_id": "busy", "member_id": a["member_id"]}, 1)
        resp = await coord.delete_groups({"groups_names": ["busy", "idle"]}, 2)
        assert [r["error_code"] for r in resp["results"]] == [0, 69]
        described = (await coord.describe_groups({"groups": ["busy"]}, 5))["groups"][0]
        assert (described["error_code"], described["group_state"]) == (0, "Dead")
        v6 = (await coord.describe_groups({"groups": ["busy"]}, 6))["groups"][0]
        assert v6["error_code"] == 69
        await coord.close()

    asyncio.run(main())


def test_list_groups_filters_by_state() -> None:
    async def main() -> None:
        coord = make_coord(_store())
        await coord.start()
        a = await coord.join_group(join_req("live"), 3)
        await coord.sync_group(sync_req("live", a["member_id"], 1, {}), 3)
        await coord.offset_commit(commit_req("idle", {("orders", 0): 1}), 8)
        stable = await coord.list_groups({"states_filter": ["stable"]}, 4)
        assert [g["group_id"] for g in stable["groups"]] == ["live"]
        every = await coord.list_groups({"states_filter": []}, 4)
        assert {g["group_id"]: g["group_state"] for g in every["groups"]} == {
            "live": "Stable",
            "idle": "Empty",
        }
        ops = await coord.describe_groups(
            {"groups": ["live"], "include_authorized_operations": 1}, 3
        )
        assert ops["groups"][0]["authorized_operations"] > 0
        assert coord.find_coordinator_key_ok("live", 0) and not coord.find_coordinator_key_ok("", 0)
        await coord.close()

    asyncio.run(main())


def test_offset_fetch_v8_answers_a_batch_of_groups() -> None:
    async def main() -> None:
        coord = make_coord(_store())
        await coord.start()
        await coord.offset_commit(commit_req("a", {("orders", 0): 4}), 8)
        resp = await coord.offset_fetch(
            {
                "groups": [
                    {"group_id": "a", "topics": None},
                    {"group_id": "b", "topics": [{"name": "orders", "partition_indexes": [0]}]},
                ]
            },
            8,
        )
        assert [fetched(g) for g in resp["groups"]] == [
            {("orders", 0): (4, -1, "")},
            {("orders", 0): (-1, -1, "")},
        ]
        await coord.close()

    asyncio.run(main())


def test_group_placement_matches_java_string_hash() -> None:
    assert java_string_hash("") == 0
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("polygenelubricants") == -(2**31)  # a known Integer.MIN_VALUE
    assert java_string_hash("€") == 0x20AC


@given(
    group=st.text(max_size=40),
    topic=st.text(max_size=40),
    partition=st.integers(0, 2**31 - 1),
    offset=st.integers(-1, 2**63 - 1),
    epoch=st.integers(-1, 2**31 - 1),
    metadata=st.text(max_size=100),
    ts=st.integers(-1, 2**62),
)
def test_key_and_value_layout_round_trips(
    group: str, topic: str, partition: int, offset: int, epoch: int, metadata: str, ts: int
) -> None:
    key = encode_key(group, topic, partition)
    assert key[:2] == b"\x00\x01"
    assert decode_key(key) == (group, topic, partition)
    committed = CommittedOffset(offset, epoch, metadata, ts)
    value = encode_value(committed)
    assert value[:2] == b"\x00\x03"
    assert decode_value(value) == committed


def test_deleting_a_topic_tombstones_its_committed_offsets() -> None:
    async def main() -> None:
        store = _store()
        coord = make_coord(store)
        await coord.start()
        await coord.offset_commit(commit_req("a", {("orders", 0): 1, ("audit", 0): 2}), 8)
        await coord.offset_commit(commit_req("b", {("orders", 1): 3}), 8)
        await coord.topic_deleted("orders")
        assert fetched(await coord.offset_fetch(fetch_req("a"), 7)) == {("audit", 0): (2, -1, "")}
        assert fetched(await coord.offset_fetch(fetch_req("b"), 7)) == {}
        await coord.close()
        again = make_coord(store.reopen())
        await again.start()
        assert fetched(await again.offset_fetch(fetch_req("a"), 7)) == {("audit", 0): (2, -1, "")}
        assert fetched(await again.offset_fetch(fetch_req("b"), 7)) == {}
        await again.close()

    asyncio.run(main())
