"""The consumer group protocol (KIP-848) of the coordinator, transport-free: a real Store, a
fake clock, requests as the broker decodes them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from group_helpers import FakeClock, TempStore, commit_errors, commit_req, join_req, make_coord

from edplog.errors import ErrorCode

V = 1


def hb(
    member_id: str,
    epoch: int,
    *,
    group: str = "g",
    topics: list[str] | None = None,
    owned: dict[uuid.UUID, set[int]] | None = None,
    instance: str | None = None,
    regex: str | None = None,
    assignor: str | None = None,
) -> dict[str, Any]:
    joining = epoch == 0
    return {
        "group_id": group,
        "member_id": member_id,
        "member_epoch": epoch,
        "instance_id": instance,
        "rack_id": None,
        "rebalance_timeout_ms": 5000 if joining else -1,
        "subscribed_topic_names": topics if topics is not None else (["t"] if joining else None),
        "subscribed_topic_regex": regex,
        "server_assignor": assignor,
        "topic_partitions": (
            []
            if joining
            else None
            if owned is None
            else [{"topic_id": t, "partitions": sorted(p)} for t, p in owned.items()]
        ),
    }


def assigned(resp: dict[str, Any]) -> dict[uuid.UUID, set[int]] | None:
    if resp["assignment"] is None:
        return None
    return {tp["topic_id"]: set(tp["partitions"]) for tp in resp["assignment"]["topic_partitions"]}


class Cluster:
    def __init__(self, partitions: int = 6, **settings: Any) -> None:
        self.store = TempStore()
        self.store.create_topic("t", partitions)
        self.tid = self.store.topic_id("t")
        self.clock = FakeClock()
        settings.setdefault("consumer_session_timeout_ms", 1000)
        settings.setdefault("consumer_heartbeat_interval_ms", 100)
        self.coord = make_coord(self.store, self.clock, **settings)

    async def start(self) -> None:
        await self.coord.start()

    async def hb(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return await self.coord.consumer_group_heartbeat(hb(*args, **kwargs), V)


def run(coro: Any) -> None:
    asyncio.run(coro)


def test_first_member_gets_every_partition_at_the_group_epoch() -> None:
    """One member joins (epoch 0): it gets epoch 1 and all six partitions of its topic."""

    async def main() -> None:
        c = Cluster()
        await c.start()
        r = await c.hb("m1", 0)
        assert r["error_code"] == ErrorCode.NONE
        assert r["member_epoch"] == 1
        assert r["heartbeat_interval_ms"] == 100
        assert assigned(r) == {c.tid: set(range(6))}
        again = await c.hb("m1", 1)
        assert again["member_epoch"] == 1 and again["assignment"] is None  # unchanged
        await c.coord.close()

    run(main())


def test_second_member_waits_until_the_first_revokes() -> None:
    """A second member is given only partitions the first no longer owns: the first is told to
    drop half (staying at its epoch) and only after it reports so does the second get them."""

    async def main() -> None:
        c = Cluster()
        await c.start()
        await c.hb("m1", 0)
        r2 = await c.hb("m2", 0)
        assert r2["member_epoch"] == 2
        assert assigned(r2) == {}  # everything is still owned by m1
        r1 = await c.hb("m1", 1)
        keep = assigned(r1)
        assert keep is not None and r1["member_epoch"] == 1  # revoke first, epoch unchanged
        assert len(keep[c.tid]) == 3
        # m1 has not acknowledged yet: m2 still gets nothing
        assert assigned(await c.hb("m2", 2, owned={})) in (None, {})
        r1 = await c.hb("m1", 1, owned=keep)
        assert r1["member_epoch"] == 2
        r2 = await c.hb("m2", 2, owned={})
        got = assigned(r2)
        assert got is not None and got[c.tid] == set(range(6)) - keep[c.tid]
        desc = await c.coord.consumer_group_describe({"group_ids": ["g"]}, 0)
        assert desc["groups"][0]["group_state"] == "Stable"
        assert desc["groups"][0]["group_epoch"] == 2
        await c.coord.close()

    run(main())


def test_wrong_epochs_and_unknown_members_are_fenced() -> None:
    """An epoch the member never had is FENCED_MEMBER_EPOCH; an unknown id UNKNOWN_MEMBER_ID;
    an unknown group with epoch > 0 GROUP_ID_NOT_FOUND; a v1 join without id INVALID_REQUEST."""

    async def main() -> None:
        c = Cluster()
        await c.start()
        await c.hb("m1", 0)
        assert (await c.hb("m1", 7))["error_code"] == ErrorCode.FENCED_MEMBER_EPOCH
        assert (await c.hb("nobody", 1))["error_code"] == ErrorCode.UNKNOWN_MEMBER_ID
        assert (await c.hb("m1", 1, group="other"))["error_code"] == ErrorCode.GROUP_ID_NOT_FOUND
        assert (await c.hb("", 0))["error_code"] == ErrorCode.INVALID_REQUEST
        bad = await c.hb("m3", 0, assignor="sticky")
        assert bad["error_code"] == ErrorCode.UNSUPPORTED_ASSIGNOR
        await c.coord.close()

    run(main())


def test_leave_gives_partitions_to_the_rest() -> None:
    """member_epoch -1 leaves; the remaining member's next heartbeat gets all partitions."""

    async def main() -> None:
        c = Cluster()
        await c.start()
        await c.hb("m1", 0)
        await c.hb("m2", 0)
        keep = assigned(await c.hb("m1", 1))
        await c.hb("m1", 1, owned=keep)
        r2 = await c.hb("m2", 2, owned={})
        left = await c.hb("m2", -1)
        assert left["error_code"] == ErrorCode.NONE and left["member_epoch"] == -1
        r1 = await c.hb("m1", 2, owned=keep)
        assert r1["member_epoch"] == 3 and assigned(r1) == {c.tid: set(range(6))}
        assert r2["error_code"] == ErrorCode.NONE
        await c.coord.close()

    run(main())


def test_session_expiry_moves_partitions() -> None:
    """A member that stops heartbeating is removed after the session timeout."""

    async def main() -> None:
        c = Cluster()
        await c.start()
        await c.hb("m1", 0)
        await c.hb("m2", 0)
        keep = assigned(await c.hb("m1", 1))
        await c.hb("m1", 1, owned=keep)
        await c.hb("m2", 2, owned={})
        c.clock.advance_ms(600)
        await c.hb("m1", 2, owned=keep)
        c.clock.advance_ms(600)  # m2 silent for 1200 ms > 1000
        await c.coord.tick_async()
        r1 = await c.hb("m1", 2, owned=keep)
        assert r1["member_epoch"] == 3 and assigned(r1) == {c.tid: set(range(6))}
        await c.coord.close()

    run(main())


def test_static_member_leaves_for_rejoin_and_takes_its_place_back() -> None:
    """epoch -2 keeps a static member's assignment; another instance id joining meanwhile
    does not get its partitions; a second join with the same instance id while the first is
    active is UNRELEASED_INSTANCE_ID; the rejoin keeps epoch and assignment."""

    async def main() -> None:
        c = Cluster()
        await c.start()
        r = await c.hb("a1", 0, instance="i1")
        assert (await c.hb("a2", 0, instance="i1"))["error_code"] == (
            ErrorCode.UNRELEASED_INSTANCE_ID
        )
        assert (await c.hb("a1", -2, instance="i1"))["error_code"] == ErrorCode.NONE
        back = await c.hb("a3", 0, instance="i1")
        assert back["error_code"] == ErrorCode.NONE
        assert back["member_epoch"] == r["member_epoch"]
        assert assigned(back) == {c.tid: set(range(6))}
        fenced = await c.hb("a1", 1, instance="i1")
        assert fenced["error_code"] == ErrorCode.FENCED_INSTANCE_ID
        await c.coord.close()

    run(main())


def test_regex_subscription_follows_topic_creation() -> None:
    """A regex subscription picks up a topic created later: new epoch, new partitions."""

    async def main() -> None:
        c = Cluster(partitions=2)
        await c.start()
        r = await c.hb("m1", 0, topics=[], regex="t.*")
        assert assigned(r) == {c.tid: {0, 1}}
        c.store.create_topic("tx", 3)
        r = await c.hb("m1", r["member_epoch"], owned={c.tid: {0, 1}})
        assert r["member_epoch"] == 2
        assert assigned(r) == {c.tid: {0, 1}, c.store.topic_id("tx"): {0, 1, 2}}
        await c.coord.close()

    run(main())


def test_commits_are_fenced_by_member_epoch() -> None:
    """OffsetCommit v9 with an older member epoch is STALE_MEMBER_EPOCH; the current one
    commits; a newer one is FENCED_MEMBER_EPOCH."""

    async def main() -> None:
        c = Cluster()
        await c.start()
        await c.hb("m1", 0)
        await c.hb("m2", 0)
        keep = assigned(await c.hb("m1", 1))
        await c.hb("m1", 1, owned=keep)  # m1 now at epoch 2
        tp = ("t", sorted(keep[c.tid])[0]) if keep else ("t", 0)
        stale = await c.coord.offset_commit(
            commit_req("g", {tp: 5}, generation=1, member_id="m1"), 9
        )
        assert commit_errors(stale)[tp] == ErrorCode.STALE_MEMBER_EPOCH
        ok = await c.coord.offset_commit(commit_req("g", {tp: 5}, generation=2, member_id="m1"), 9)
        assert commit_errors(ok)[tp] == ErrorCode.NONE
        new = await c.coord.offset_commit(commit_req("g", {tp: 5}, generation=3, member_id="m1"), 9)
        assert commit_errors(new)[tp] == ErrorCode.FENCED_MEMBER_EPOCH
        await c.coord.close()

    run(main())


def test_protocols_do_not_mix_in_a_non_empty_group_but_empty_groups_convert() -> None:
    """A classic JoinGroup to a live consumer group is INCONSISTENT_GROUP_PROTOCOL and a
    heartbeat to a live classic group GROUP_ID_NOT_FOUND; an empty group of either type is
    taken over by the other protocol."""

    async def main() -> None:
        c = Cluster(min_session_timeout_ms=10)
        await c.start()
        await c.hb("m1", 0)
        refused = await c.coord.join_group(join_req("g", session_ms=1000), 5)
        assert refused["error_code"] == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        await c.hb("m1", -1)  # empty now: a classic member may take the id over
        first = await c.coord.join_group(join_req("g", session_ms=1000), 5)
        assert first["error_code"] == ErrorCode.MEMBER_ID_REQUIRED  # a classic group now
        r = await c.hb("m2", 0)
        assert r["error_code"] == ErrorCode.GROUP_ID_NOT_FOUND
        listed = await c.coord.list_groups({"states_filter": [], "types_filter": []}, 5)
        assert [(g["group_id"], g["group_type"]) for g in listed["groups"]] == [("g", "classic")]
        await c.coord.close()

    run(main())


def test_group_epoch_members_and_assignment_survive_a_restart() -> None:
    """After a restart the group has its epoch, its member with its epoch and assignment,
    and that member's next heartbeat is accepted without rejoining."""

    async def main() -> None:
        c = Cluster()
        await c.start()
        await c.hb("m1", 0)
        await c.hb("m2", 0)
        keep = assigned(await c.hb("m1", 1))
        await c.hb("m1", 1, owned=keep)
        await c.coord.close()
        store = c.store.reopen()
        coord = make_coord(store, c.clock, consumer_session_timeout_ms=1000)
        await coord.start()
        group = coord.consumer.groups["g"]
        assert group.group_epoch == 2
        assert group.members["m1"].member_epoch == 2
        assert group.members["m1"].assigned == keep
        r = await coord.consumer_group_heartbeat(hb("m1", 2, owned=keep), V)
        assert r["error_code"] == ErrorCode.NONE and r["member_epoch"] == 2
        listed = await coord.list_groups({"states_filter": [], "types_filter": ["consumer"]}, 5)
        assert [g["group_id"] for g in listed["groups"]] == ["g"]
        await coord.close()
        store.close()

    run(main())


def test_only_changes_are_written_and_a_static_takeover_survives_a_restart() -> None:
    """A heartbeat that changes nothing appends no record to __consumer_offsets; a static
    member that left with -2 and came back under a new member id is, after a restart, the
    new id only, with the old epoch and assignment."""

    async def main() -> None:
        c = Cluster()
        await c.start()
        r = await c.hb("a1", 0, instance="i1")
        plog = c.store.log("__consumer_offsets", c.coord.offsets.partition_for("g"))
        end = plog.log_end_offset
        await c.hb("a1", r["member_epoch"], instance="i1")
        assert plog.log_end_offset == end
        await c.hb("a1", -2, instance="i1")
        await c.hb("a2", 0, instance="i1")
        await c.coord.close()
        store = c.store.reopen()
        coord = make_coord(store, c.clock, consumer_session_timeout_ms=1000)
        await coord.start()
        group = coord.consumer.groups["g"]
        assert list(group.members) == ["a2"]
        assert group.members["a2"].member_epoch == r["member_epoch"]
        assert group.members["a2"].assigned == {c.tid: set(range(6))}
        assert group.static_members == {"i1": "a2"}
        await coord.close()
        store.close()

    run(main())


def test_topic_growth_and_deletion_make_new_targets() -> None:
    """Partitions added to a subscribed topic go to the member at a new group epoch; when the
    topic is deleted the member is told to drop its partitions, again at a new epoch."""

    async def main() -> None:
        c = Cluster(partitions=2)
        await c.start()
        r = await c.hb("m1", 0)
        assert assigned(r) == {c.tid: {0, 1}}
        c.store.add_partitions("t", 4)
        r = await c.hb("m1", 1, owned={c.tid: {0, 1}})
        assert r["member_epoch"] == 2 and assigned(r) == {c.tid: {0, 1, 2, 3}}
        c.store.delete_topic("t")
        r = await c.hb("m1", 2, owned={c.tid: {0, 1, 2, 3}})
        assert assigned(r) == {}  # revoke everything first, epoch unchanged until it does
        r = await c.hb("m1", 2, owned={})
        assert r["member_epoch"] == 3
        await c.coord.close()

    run(main())


def test_member_that_does_not_revoke_in_time_is_fenced() -> None:
    """A member that keeps reporting partitions it was told to give up past its rebalance
    timeout (5 s here) is removed, and the other member gets everything."""

    async def main() -> None:
        c = Cluster(consumer_session_timeout_ms=60_000)
        await c.start()
        await c.hb("m1", 0)
        await c.hb("m2", 0)
        await c.hb("m1", 1)  # told to revoke half
        all_six = {c.tid: set(range(6))}
        for _ in range(3):
            c.clock.advance_ms(2000)
            await c.hb("m1", 1, owned=all_six)  # still claims all six
            await c.coord.tick_async()
        assert "m1" not in c.coord.consumer.groups["g"].members
        r2 = await c.hb("m2", 2, owned={})
        assert assigned(r2) == all_six
        late = await c.hb("m1", 1, owned=all_six)
        assert late["error_code"] == ErrorCode.UNKNOWN_MEMBER_ID
        await c.coord.close()

    run(main())


def test_v0_names_the_member_and_describe_and_delete_follow_kafka() -> None:
    """v0 joins without a member id get one from the coordinator; ConsumerGroupDescribe of
    an unknown or classic group is GROUP_ID_NOT_FOUND; DeleteGroups refuses a group with
    members (NON_EMPTY_GROUP) and deletes it once empty."""

    async def main() -> None:
        c = Cluster()
        await c.start()
        r = await c.coord.consumer_group_heartbeat(hb("", 0), 0)
        assert r["error_code"] == ErrorCode.NONE and r["member_id"]
        d = await c.coord.consumer_group_describe({"group_ids": ["g", "nope"]}, 1)
        assert [g["error_code"] for g in d["groups"]] == [0, ErrorCode.GROUP_ID_NOT_FOUND]
        assert d["groups"][0]["members"][0]["member_id"] == r["member_id"]
        refused = await c.coord.delete_groups({"groups_names": ["g"]}, 2)
        assert refused["results"][0]["error_code"] == ErrorCode.NON_EMPTY_GROUP
        await c.coord.consumer_group_heartbeat(hb(r["member_id"], -1), 0)
        done = await c.coord.delete_groups({"groups_names": ["g"]}, 2)
        assert done["results"][0]["error_code"] == ErrorCode.NONE
        assert "g" not in c.coord.consumer.groups
        await c.coord.close()

    run(main())


def test_group_consumer_max_size_refuses_one_member_too_many() -> None:
    """With a maximum of two members a third join is GROUP_MAX_SIZE_REACHED; the two keep
    their places and a heartbeat of theirs still works."""

    async def main() -> None:
        c = Cluster(consumer_max_size=2)
        await c.start()
        await c.hb("m1", 0)
        await c.hb("m2", 0)
        third = await c.hb("m3", 0)
        assert third["error_code"] == ErrorCode.GROUP_MAX_SIZE_REACHED
        assert set(c.coord.consumer.groups["g"].members) == {"m1", "m2"}
        assert (await c.hb("m1", 1))["error_code"] == ErrorCode.NONE
        await c.coord.close()

    run(main())


def test_commit_version_rule_and_offset_fetch_member_checks() -> None:
    """With Kafka's rule on (OffsetCommit v9+ for consumer-protocol members) a v8 commit of a
    member is UNSUPPORTED_VERSION; OffsetFetch naming a member checks it: an old epoch is
    STALE_MEMBER_EPOCH, an unknown member UNKNOWN_MEMBER_ID, the current epoch reads."""

    async def main() -> None:
        c = Cluster(consumer_commit_min_version=9)
        await c.start()
        r = await c.hb("m1", 0)
        old = await c.coord.offset_commit(
            commit_req("g", {("t", 0): 3}, generation=1, member_id="m1"), 8
        )
        assert commit_errors(old)[("t", 0)] == ErrorCode.UNSUPPORTED_VERSION
        ok = await c.coord.offset_commit(
            commit_req("g", {("t", 0): 3}, generation=1, member_id="m1"), 9
        )
        assert commit_errors(ok)[("t", 0)] == ErrorCode.NONE

        def fetch(member_id: str, epoch: int) -> dict[str, Any]:
            group = {"group_id": "g", "member_id": member_id, "member_epoch": epoch, "topics": None}
            return {"groups": [group], "require_stable": False}

        errors = []
        for member_id, epoch in (("m1", r["member_epoch"]), ("m1", 0), ("ghost", 1)):
            body = await c.coord.offset_fetch(fetch(member_id, epoch), 8)
            errors.append(body["groups"][0]["error_code"])
        assert errors == [ErrorCode.NONE, ErrorCode.STALE_MEMBER_EPOCH, ErrorCode.UNKNOWN_MEMBER_ID]
        body = await c.coord.offset_fetch(fetch("m1", r["member_epoch"]), 8)
        assert body["groups"][0]["topics"][0]["partitions"][0]["committed_offset"] == 3
        await c.coord.close()

    run(main())


def test_fenced_static_member_rejoins_under_its_own_id() -> None:
    """A static member fenced by a wrong epoch rejoins with epoch 0 and the same member id:
    it is accepted (not UNRELEASED_INSTANCE_ID) and gets its partitions at a new epoch."""

    async def main() -> None:
        c = Cluster()
        await c.start()
        r = await c.hb("s1", 0, instance="i1")
        assert (await c.hb("s1", 9, instance="i1"))["error_code"] == ErrorCode.FENCED_MEMBER_EPOCH
        again = await c.hb("s1", 0, instance="i1")
        assert again["error_code"] == ErrorCode.NONE
        assert again["member_epoch"] > r["member_epoch"]
        assert assigned(again) == {c.tid: set(range(6))}
        await c.coord.close()

    run(main())
