"""The classic rebalance protocol driven directly through the coordinator (no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

from group_helpers import FakeClock, hb_req, join_req, make_coord, settle, sync_req

REBALANCE_IN_PROGRESS = 27
UNKNOWN_MEMBER_ID = 25
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
MEMBER_ID_REQUIRED = 79
FENCED_INSTANCE_ID = 82


async def _stable_pair(coord: Any, version: int = 3) -> tuple[str, str, int]:
    """A joins alone, then B joins and A rejoins; both sync. Returns (a, b, generation)."""
    a = await coord.join_group(join_req(), version)
    assert a["error_code"] == 0 and a["generation_id"] == 1 and a["leader"] == a["member_id"]
    a_id = a["member_id"]
    await coord.sync_group(sync_req("g", a_id, 1, {a_id: b"all"}), version)
    b_task = asyncio.create_task(coord.join_group(join_req(protocols=(("range", b"B"),)), version))
    await settle()
    assert not b_task.done()
    hb = await coord.heartbeat(hb_req("g", a_id, 1), version)
    assert hb["error_code"] == REBALANCE_IN_PROGRESS
    a2 = await coord.join_group(join_req(member_id=a_id), version)
    b = await asyncio.wait_for(b_task, 5)
    assert a2["generation_id"] == b["generation_id"] == 2
    b_id = b["member_id"]
    b_sync = asyncio.create_task(coord.sync_group(sync_req("g", b_id, 2), version))
    await settle()
    assert not b_sync.done(), "a follower waits for the leader's assignment"
    a_sync = await coord.sync_group(sync_req("g", a_id, 2, {a_id: b"p0", b_id: b"p1"}), version)
    assert a_sync["assignment"] == b"p0"
    assert (await asyncio.wait_for(b_sync, 5))["assignment"] == b"p1"
    return a_id, b_id, 2


def test_two_members_first_joiner_leads_and_assignments_are_relayed() -> None:
    async def main() -> None:
        coord = make_coord()
        await coord.start()
        a_id, b_id, gen = await _stable_pair(coord)
        described = await coord.describe_groups({"groups": ["g"]}, 5)
        group = described["groups"][0]
        assert group["group_state"] == "Stable" and group["protocol_data"] == "range"
        members = {m["member_id"]: m for m in group["members"]}
        assert members[a_id]["member_assignment"] == b"p0"
        assert members[b_id]["member_metadata"] == b"B"
        for mid in (a_id, b_id):
            assert (await coord.heartbeat(hb_req("g", mid, gen), 3))["error_code"] == 0
        await coord.close()

    asyncio.run(main())


def test_leader_sees_every_member_metadata_and_followers_see_none() -> None:
    async def main() -> None:
        clock = FakeClock()
        coord = make_coord(clock=clock, initial_rebalance_delay_ms=100)
        await coord.start()
        tasks = [
            asyncio.create_task(
                coord.join_group(join_req(protocols=(("range", f"m{i}".encode()),)), 3)
            )
            for i in range(3)
        ]
        await settle()
        assert not any(t.done() for t in tasks), "the initial delay holds the first rebalance"
        clock.advance_ms(150)
        coord.tick()
        results = [await asyncio.wait_for(t, 5) for t in tasks]
        leader = results[0]["member_id"]
        assert {r["leader"] for r in results} == {leader}
        assert {r["generation_id"] for r in results} == {1}
        assert [m["metadata"] for m in results[0]["members"]] == [b"m0", b"m1", b"m2"]
        assert results[1]["members"] == [] and results[2]["members"] == []
        await coord.close()

    asyncio.run(main())


def test_protocol_is_one_every_member_supports_by_most_votes() -> None:
    async def main() -> None:
        clock = FakeClock()
        coord = make_coord(clock=clock, initial_rebalance_delay_ms=100)
        await coord.start()
        prefs = [
            (("range", b""), ("roundrobin", b""), ("sticky", b"")),
            (("sticky", b""), ("roundrobin", b"")),
            (("roundrobin", b""), ("sticky", b"")),
            (("sticky", b""), ("roundrobin", b"")),
            (("sticky", b""), ("range", b""), ("roundrobin", b"")),
        ]
        tasks = [asyncio.create_task(coord.join_group(join_req(protocols=p), 3)) for p in prefs]
        await settle()
        clock.advance_ms(150)
        coord.tick()
        results = [await asyncio.wait_for(t, 5) for t in tasks]
        assert {r["protocol_name"] for r in results} == {"sticky"}
        await coord.close()

    asyncio.run(main())


def test_member_without_a_common_protocol_is_refused() -> None:
    async def main() -> None:
        coord = make_coord()
        await coord.start()
        await coord.join_group(join_req(), 3)
        other = await coord.join_group(join_req(protocols=(("roundrobin", b""),)), 3)
        assert other["error_code"] == INCONSISTENT_GROUP_PROTOCOL
        wrong_type = await coord.join_group(join_req(protocol_type="connect"), 3)
        assert wrong_type["error_code"] == INCONSISTENT_GROUP_PROTOCOL
        no_protocols = await coord.join_group(join_req("h", protocols=()), 3)
        assert no_protocols["error_code"] == INCONSISTENT_GROUP_PROTOCOL
        await coord.close()

    asyncio.run(main())


def test_leave_rebalances_and_the_remaining_member_gets_everything() -> None:
    async def main() -> None:
        coord = make_coord()
        await coord.start()
        a_id, b_id, gen = await _stable_pair(coord)
        left = await coord.leave_group(
            {"group_id": "g", "member_id": "", "members": [{"member_id": b_id}]}, 3
        )
        assert left["error_code"] == 0 and left["members"][0]["error_code"] == 0
        assert (await coord.heartbeat(hb_req("g", a_id, gen), 3))["error_code"] == 27
        assert (await coord.heartbeat(hb_req("g", b_id, gen), 3))["error_code"] == 25
        a = await coord.join_group(join_req(member_id=a_id), 3)
        assert a["generation_id"] == gen + 1 and a["leader"] == a_id
        assert [m["member_id"] for m in a["members"]] == [a_id]
        sync = await coord.sync_group(sync_req("g", a_id, gen + 1, {a_id: b"p0,p1"}), 3)
        assert sync["assignment"] == b"p0,p1"
        await coord.close()

    asyncio.run(main())


def test_leave_v0_names_one_member_and_reports_unknown_at_top_level() -> None:
    async def main() -> None:
        coord = make_coord()
        await coord.start()
        a = await coord.join_group(join_req(), 1)
        unknown = await coord.leave_group({"group_id": "g", "member_id": "nobody"}, 0)
        assert unknown["error_code"] == UNKNOWN_MEMBER_ID
        ok = await coord.leave_group({"group_id": "g", "member_id": a["member_id"]}, 0)
        assert ok["error_code"] == 0
        listed = await coord.list_groups({}, 4)
        assert [(g["group_id"], g["group_state"]) for g in listed["groups"]] == [("g", "Empty")]
        described = (await coord.describe_groups({"groups": ["g"]}, 4))["groups"][0]
        assert described["members"] == []
        await coord.close()

    asyncio.run(main())


def test_expired_session_removes_member_and_starts_rebalance() -> None:
    async def main() -> None:
        clock = FakeClock()
        coord = make_coord(clock=clock)
        await coord.start()
        a_id, b_id, gen = await _stable_pair(coord)
        for _ in range(3):  # A heartbeats every 400 ms; B stays silent past its 1 s session
            clock.advance_ms(400)
            assert (await coord.heartbeat(hb_req("g", a_id, gen), 3))["error_code"] == 0
            coord.tick()
        assert (await coord.heartbeat(hb_req("g", b_id, gen), 3))["error_code"] == 25
        assert (await coord.heartbeat(hb_req("g", a_id, gen), 3))["error_code"] == 27
        a = await coord.join_group(join_req(member_id=a_id), 3)
        assert a["generation_id"] == gen + 1 and len(a["members"]) == 1
        await coord.close()

    asyncio.run(main())


def test_member_not_rejoining_within_rebalance_timeout_is_dropped() -> None:
    async def main() -> None:
        clock = FakeClock()
        coord = make_coord(clock=clock)
        await coord.start()
        a_id, b_id, gen = await _stable_pair(coord)
        # C joins; A rejoins; B keeps heartbeating but never rejoins.
        c_task = asyncio.create_task(coord.join_group(join_req(), 3))
        await settle()
        a_task = asyncio.create_task(coord.join_group(join_req(member_id=a_id), 3))
        await settle()
        for _ in range(5):  # 2 s rebalance timeout, B heartbeats every 500 ms
            clock.advance_ms(500)
            await coord.heartbeat(hb_req("g", b_id, gen), 3)
            coord.tick()
            await settle()
        a = await asyncio.wait_for(a_task, 5)
        c = await asyncio.wait_for(c_task, 5)
        assert a["generation_id"] == c["generation_id"] == gen + 1
        assert {m["member_id"] for m in a["members"]} == {a_id, c["member_id"]}
        assert (await coord.heartbeat(hb_req("g", b_id, gen), 3))["error_code"] == 25
        await coord.close()

    asyncio.run(main())


def test_stale_generation_is_fenced_on_heartbeat_and_sync() -> None:
    async def main() -> None:
        coord = make_coord()
        await coord.start()
        a_id, b_id, gen = await _stable_pair(coord)
        assert (await coord.heartbeat(hb_req("g", a_id, gen - 1), 3))["error_code"] == 22
        assert (await coord.sync_group(sync_req("g", b_id, gen - 1), 3))["error_code"] == 22
        assert (await coord.heartbeat(hb_req("g", "ghost", gen), 3))["error_code"] == 25
        assert (await coord.heartbeat(hb_req("nogroup", a_id, gen), 3))["error_code"] == 25
        await coord.close()

    asyncio.run(main())


def test_join_v4_requires_a_member_id_first() -> None:
    async def main() -> None:
        clock = FakeClock()
        coord = make_coord(clock=clock)
        await coord.start()
        first = await coord.join_group(join_req(), 4)
        assert first["error_code"] == MEMBER_ID_REQUIRED and first["member_id"]
        assert (await coord.describe_groups({"groups": ["g"]}, 4))["groups"][0]["members"] == []
        second = await coord.join_group(join_req(member_id=first["member_id"]), 4)
        assert second["error_code"] == 0 and second["member_id"] == first["member_id"]
        assert second["leader"] == first["member_id"] and second["generation_id"] == 1
        # An id handed out but never used expires with the session timeout.
        stale = await coord.join_group(join_req("h"), 7)
        clock.advance_ms(1500)
        coord.tick()
        late = await coord.join_group(join_req("h", member_id=stale["member_id"]), 7)
        assert late["error_code"] == UNKNOWN_MEMBER_ID
        assert late["protocol_name"] is None
        await coord.close()

    asyncio.run(main())


def test_static_member_rejoin_replaces_old_id_without_rebalance() -> None:
    async def main() -> None:
        coord = make_coord()
        await coord.start()
        a = await coord.join_group(join_req(instance="host-a"), 5)
        a_id = a["member_id"]
        assert a["error_code"] == 0, "static members skip MEMBER_ID_REQUIRED"
        await coord.sync_group(sync_req("g", a_id, 1, {a_id: b"mine"}, instance="host-a"), 5)
        again = await coord.join_group(join_req(instance="host-a"), 5)
        new_id = again["member_id"]
        assert again["error_code"] == 0 and new_id != a_id
        assert again["generation_id"] == 1, "no rebalance for an unchanged static member"
        assert again["leader"] == a_id, "the new id must not think it should assign"
        assert again["members"] == []
        sync = await coord.sync_group(sync_req("g", new_id, 1, instance="host-a"), 5)
        assert sync["error_code"] == 0 and sync["assignment"] == b"mine"
        old_hb = await coord.heartbeat(hb_req("g", a_id, 1, instance="host-a"), 3)
        assert old_hb["error_code"] == FENCED_INSTANCE_ID
        new_hb = await coord.heartbeat(hb_req("g", new_id, 1, instance="host-a"), 3)
        assert new_hb["error_code"] == 0
        old_leave = await coord.leave_group(
            {"group_id": "g", "members": [{"member_id": a_id, "group_instance_id": "host-a"}]},
            3,
        )
        assert old_leave["members"][0]["error_code"] == FENCED_INSTANCE_ID
        described = (await coord.describe_groups({"groups": ["g"]}, 4))["groups"][0]
        assert described["group_state"] == "Stable"
        assert [m["group_instance_id"] for m in described["members"]] == ["host-a"]
        await coord.close()

    asyncio.run(main())


def test_static_member_with_new_protocols_triggers_rebalance() -> None:
    async def main() -> None:
        coord = make_coord()
        await coord.start()
        a = await coord.join_group(join_req(instance="host-a"), 5)
        await coord.sync_group(sync_req("g", a["member_id"], 1, {}, instance="host-a"), 5)
        changed = await coord.join_group(
            join_req(instance="host-a", protocols=(("range", b"new-topics"),)), 5
        )
        assert changed["generation_id"] == 2 and changed["leader"] == changed["member_id"]
        assert changed["members"][0]["metadata"] == b"new-topics"
        await coord.close()

    asyncio.run(main())


def test_unsynced_followers_are_told_to_rejoin_when_rebalance_restarts() -> None:
    async def main() -> None:
        coord = make_coord()
        await coord.start()
        a = await coord.join_group(join_req(), 3)
        a_id = a["member_id"]
        await coord.sync_group(sync_req("g", a_id, 1, {a_id: b""}), 3)
        b_task = asyncio.create_task(coord.join_group(join_req(), 3))
        await settle()
        await coord.join_group(join_req(member_id=a_id), 3)
        b = await asyncio.wait_for(b_task, 5)
        b_sync = asyncio.create_task(coord.sync_group(sync_req("g", b["member_id"], 2), 3))
        await settle()
        c_task = asyncio.create_task(coord.join_group(join_req(), 3))  # before the leader syncs
        assert (await asyncio.wait_for(b_sync, 5))["error_code"] == REBALANCE_IN_PROGRESS
        c_task.cancel()  # a client that hung up: its parked join must not break the group
        await settle()
        await coord.close()

    asyncio.run(main())


def test_close_answers_parked_joins_with_not_coordinator() -> None:
    async def main() -> None:
        coord = make_coord()
        await coord.start()
        a = await coord.join_group(join_req(), 3)
        await coord.sync_group(sync_req("g", a["member_id"], 1, {}), 3)
        parked = asyncio.create_task(coord.join_group(join_req(), 3))
        await settle()
        await coord.close()
        assert (await asyncio.wait_for(parked, 5))["error_code"] == 16

    asyncio.run(main())


def test_invalid_session_timeout_and_group_id() -> None:
    async def main() -> None:
        coord = make_coord(max_session_timeout_ms=5000)
        await coord.start()
        assert (await coord.join_group(join_req(session_ms=9000), 3))["error_code"] == 26
        assert (await coord.join_group(join_req(session_ms=1), 3))["error_code"] == 26
        assert (await coord.join_group(join_req(""), 3))["error_code"] == 24
        assert (await coord.join_group(join_req(member_id="x"), 3))["error_code"] == 25
        await coord.close()

    asyncio.run(main())


def test_session_expiry_is_driven_by_the_reaper_task() -> None:
    async def main() -> None:
        clock = FakeClock()
        coord = make_coord(clock=clock, tick_interval_ms=5)
        await coord.start()
        a = await coord.join_group(join_req(), 3)
        await coord.sync_group(sync_req("g", a["member_id"], 1, {}), 3)
        clock.advance_ms(5000)
        for _ in range(400):  # bounded: the reaper runs every 5 ms
            listed = await coord.list_groups({"states_filter": ["Empty"]}, 4)
            if listed["groups"]:
                break
            await asyncio.sleep(0.01)
        assert [g["group_id"] for g in listed["groups"]] == ["g"]
        await coord.close()

    asyncio.run(main())
