"""Every group API at every version the broker advertises, through edplog's own codec.

Requests are encoded and decoded exactly as the broker receives them (so the coordinator sees
the version's defaults), and its answers must encode at that version and decode back to what
a client would read. This pins the dict contract between the broker and the coordinator.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from group_helpers import TempStore, make_coord

protocol = pytest.importorskip("edplog.protocol")

JOIN, HEARTBEAT, LEAVE, SYNC = 11, 12, 13, 14
COMMIT, FETCH, DESCRIBE, LIST, DELETE, OFFSET_DELETE = 8, 9, 15, 16, 42, 47
METHODS = {
    JOIN: "join_group",
    SYNC: "sync_group",
    HEARTBEAT: "heartbeat",
    LEAVE: "leave_group",
    COMMIT: "offset_commit",
    FETCH: "offset_fetch",
    DESCRIBE: "describe_groups",
    LIST: "list_groups",
    DELETE: "delete_groups",
    OFFSET_DELETE: "offset_delete",
}


def _version(api_key: int, wanted: int) -> int:
    low, high = protocol.SUPPORTED[api_key]
    return max(low, min(wanted, high))


async def _call(coord: Any, api_key: int, version: int, body: dict[str, Any]) -> dict[str, Any]:
    frame = protocol.encode_request(api_key, version, 7, "tester", body)
    view = memoryview(frame)[4:]
    header = protocol.read_request_header(view)
    req = protocol.decode_request(api_key, version, view, header.body_offset)
    method = getattr(coord, METHODS[api_key])
    resp = await method(req, version)
    parts, total = protocol.encode_response(api_key, version, 7, resp)
    raw = b"".join(bytes(p) for p in parts)
    assert len(raw) == total
    correlation_id, decoded = protocol.decode_response(api_key, version, memoryview(raw)[4:])
    assert correlation_id == 7
    return decoded


async def _scenario(coord: Any, store: TempStore, level: int) -> None:
    group = f"g{level}"
    v_join = _version(JOIN, level)
    join_body = {
        "group_id": group,
        "session_timeout_ms": 1000,
        "rebalance_timeout_ms": 1000,
        "member_id": "",
        "group_instance_id": None,
        "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": b"subscription"}],
        "reason": "wire test",
    }
    joined = await _call(coord, JOIN, v_join, join_body)
    if v_join >= 4:
        assert joined["error_code"] == 79
        joined = await _call(coord, JOIN, v_join, {**join_body, "member_id": joined["member_id"]})
    assert joined["error_code"] == 0 and joined["protocol_name"] == "range"
    assert joined.get("skip_assignment", False) is False
    member, generation = joined["member_id"], joined["generation_id"]
    assert joined["leader"] == member
    assert [bytes(m["metadata"]) for m in joined["members"]] == [b"subscription"]

    synced = await _call(
        coord,
        SYNC,
        _version(SYNC, level),
        {
            "group_id": group,
            "generation_id": generation,
            "member_id": member,
            "protocol_type": "consumer",
            "protocol_name": "range",
            "assignments": [{"member_id": member, "assignment": b"t:0"}],
        },
    )
    assert synced["error_code"] == 0 and bytes(synced["assignment"]) == b"t:0"

    hb = {"group_id": group, "generation_id": generation, "member_id": member}
    assert (await _call(coord, HEARTBEAT, _version(HEARTBEAT, level), hb))["error_code"] == 0

    v_commit = _version(COMMIT, level)
    commit_body = {
        "group_id": group,
        "generation_id_or_member_epoch": generation,
        "member_id": member,
        "topics": [
            {
                "name": "t",
                "partitions": [
                    {
                        "partition_index": 0,
                        "committed_offset": 42,
                        "committed_leader_epoch": 3,
                        "committed_metadata": "meta",
                    },
                    {"partition_index": 9, "committed_offset": 1, "committed_metadata": ""},
                ],
            }
        ],
    }
    if v_commit >= 10:  # topics named by id; an id no topic has is UNKNOWN_TOPIC_ID
        named = commit_body["topics"][0]
        commit_body["topics"] = [
            {"topic_id": store.topic_id("t"), "partitions": named["partitions"]},
            {"topic_id": uuid.uuid4(), "partitions": named["partitions"][:1]},
        ]
    committed = await _call(coord, COMMIT, v_commit, commit_body)
    errors = [p["error_code"] for p in committed["topics"][0]["partitions"]]
    if v_commit >= 10:
        assert committed["topics"][0]["topic_id"] == store.topic_id("t")
        assert [p["error_code"] for p in committed["topics"][1]["partitions"]] == [100]
    if v_commit == 0:
        # v0 carries no member: an active group refuses it, a standalone one takes it.
        assert errors == [25, 25]
        group = f"standalone{level}"
        committed = await _call(coord, COMMIT, v_commit, {**commit_body, "group_id": group})
        errors = [p["error_code"] for p in committed["topics"][0]["partitions"]]
    assert errors == [0, 3]

    v_fetch = _version(FETCH, level)
    wanted: list[dict] = [{"name": "t", "partition_indexes": [0]}]
    if v_fetch >= 10:  # topics named by id here too
        wanted = [{"topic_id": store.topic_id("t"), "partition_indexes": [0]}]
    if v_fetch >= 8:
        batch = [{"group_id": group, "member_id": member, "member_epoch": -1, "topics": wanted}]
        fetched = await _call(coord, FETCH, v_fetch, {"groups": batch})
        assert fetched["groups"][0]["error_code"] == 0
        if v_fetch >= 10:
            assert fetched["groups"][0]["topics"][0]["topic_id"] == store.topic_id("t")
        row = fetched["groups"][0]["topics"][0]["partitions"][0]
    else:
        fetched = await _call(coord, FETCH, v_fetch, {"group_id": group, "topics": wanted})
        row = fetched["topics"][0]["partitions"][0]
    assert (row["committed_offset"], row["metadata"], row["error_code"]) == (42, "meta", 0)
    if v_fetch >= 5:
        assert row["committed_leader_epoch"] == (3 if v_commit >= 6 else -1)

    group = f"g{level}"
    v_describe = _version(DESCRIBE, level)
    described = await _call(coord, DESCRIBE, v_describe, {"groups": [group, "nope"]})
    entry = described["groups"][0]
    missing = described["groups"][1]
    assert missing["group_state"] == "Dead"
    if v_describe >= 6:
        assert missing["error_code"] == 69 and "nope" in missing["error_message"]
    assert entry["group_state"] == "Stable" and bytes(entry["members"][0]["member_assignment"]) == (
        b"t:0"
    )
    listed = await _call(coord, LIST, _version(LIST, level), {})
    assert group in {g["group_id"] for g in listed["groups"]}

    # While members are in, a subscription that cannot be read counts as subscribed.
    drop = {"group_id": group, "topics": [{"name": "t", "partitions": [{"partition_index": 0}]}]}
    busy = await _call(coord, OFFSET_DELETE, 0, drop)
    assert busy["error_code"] == 0 and busy["topics"][0]["partitions"][0]["error_code"] == 86

    v_leave = _version(LEAVE, level)
    if v_leave >= 3:
        leave = {"group_id": group, "members": [{"member_id": member}]}
        left = await _call(coord, LEAVE, v_leave, leave)
        assert left["error_code"] == 0 and left["members"][0]["error_code"] == 0
    else:
        left = await _call(coord, LEAVE, v_leave, {"group_id": group, "member_id": member})
        assert left["error_code"] == 0

    dropped = await _call(coord, OFFSET_DELETE, 0, drop)
    assert dropped["topics"][0]["partitions"][0]["error_code"] == 0
    assert ("t", 0) not in coord.offsets.get(group)

    deleted = await _call(coord, DELETE, _version(DELETE, level), {"groups_names": [group, "nope"]})
    assert [r["error_code"] for r in deleted["results"]] == [0, 69]
    listed = await _call(coord, LIST, _version(LIST, level), {})
    assert group not in {g["group_id"] for g in listed["groups"]}


@pytest.mark.parametrize("level", range(11))
def test_every_group_api_version_round_trips_through_the_codec(level: int) -> None:
    async def main() -> None:
        store = TempStore()
        store.create_topic("t", 2)
        coord = make_coord(store)
        await coord.start()
        await _scenario(coord, store, level)
        await coord.close()

    asyncio.run(main())
