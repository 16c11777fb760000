"""Model-based test of consumer-protocol reconciliation: random joins, leaves, expiries,
topic growth and heartbeats of members that do what the coordinator tells them (and some
that are slow to report), checked after every step against the protocol's safety rule."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from edplog.errors import ErrorCode
from edplog.group.assignors import RangeAssignor, UniformAssignor
from edplog.group.consumer_group import ConsumerGroups, MemberState

TID = uuid.UUID(int=42)


class Reconciliation(RuleBasedStateMachine):
    """Clients keep what the coordinator last gave them (``owned``) and report it, or (when
    ``report`` is drawn False) send a heartbeat without their partitions, as an unchanged
    client does; a member that never reports a revocation is fenced after its rebalance
    timeout."""

    def __init__(self) -> None:
        super().__init__()
        self.t = 0.0
        self.partitions = 4
        self.groups = ConsumerGroups(
            now=lambda: self.t,
            topics=lambda: {"t": (TID, self.partitions)},
            assignors={"uniform": UniformAssignor(), "range": RangeAssignor()},
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1000,
        )
        self.loop = asyncio.new_event_loop()
        self.epoch: dict[str, int] = {}
        self.owned: dict[str, set[int]] = {}
        self.next_id = 0

    def teardown(self) -> None:
        self.loop.close()

    def _call(self, member_id: str, epoch: int, owned: set[int] | None) -> dict:
        req = {
            "group_id": "g",
            "member_id": member_id,
            "member_epoch": epoch,
            "instance_id": None,
            "rack_id": None,
            "rebalance_timeout_ms": 5000 if epoch == 0 else -1,
            "subscribed_topic_names": ["t"] if epoch == 0 else None,
            "subscribed_topic_regex": None,
            "server_assignor": None,
            "topic_partitions": []
            if epoch == 0
            else None
            if owned is None
            else [{"topic_id": TID, "partitions": sorted(owned)}],
        }
        return self.loop.run_until_complete(self.groups.heartbeat(req, 1))

    def _take(self, member_id: str, resp: dict) -> None:
        if resp["error_code"] != ErrorCode.NONE:
            self.epoch.pop(member_id, None)
            self.owned.pop(member_id, None)
            return
        self.epoch[member_id] = resp["member_epoch"]
        if resp["assignment"] is not None:
            self.owned[member_id] = {
                p for tp in resp["assignment"]["topic_partitions"] for p in tp["partitions"]
            }

    @rule()
    def join(self) -> None:
        if len(self.epoch) >= 5:
            return
        self.next_id += 1
        mid = f"m{self.next_id}"
        self.owned[mid] = set()
        self._take(mid, self._call(mid, 0, None))

    @rule(data=st.data(), report=st.booleans())
    def heartbeat(self, data: st.DataObject, report: bool) -> None:
        if not self.epoch:
            return
        mid = data.draw(st.sampled_from(sorted(self.epoch)))
        self._take(mid, self._call(mid, self.epoch[mid], self.owned[mid] if report else None))

    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        if not self.epoch:
            return
        mid = data.draw(st.sampled_from(sorted(self.epoch)))
        self._call(mid, -1, None)
        del self.epoch[mid], self.owned[mid]

    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        """A member goes silent; the others heartbeat on; its session runs out."""
        if not self.epoch:
            return
        mid = data.draw(st.sampled_from(sorted(self.epoch)))
        del self.epoch[mid], self.owned[mid]
        self.t += 6
        for other in sorted(self.epoch):
            self._take(other, self._call(other, self.epoch[other], self.owned[other]))
        self.t += 6
        self.groups.expired()

    @rule()
    def grow(self) -> None:
        if self.partitions < 8:
            self.partitions += 1

    @invariant()
    def no_partition_has_two_owners(self) -> None:
        """Neither the coordinator's view nor the clients' ever give a partition to two
        members at once, counting partitions still pending revocation."""
        group = self.groups.groups.get("g")
        if group is None:
            return
        held: list[int] = []
        for m in group.members.values():
            held += list(m.assigned.get(TID, ())) + list(m.pending_revocation.get(TID, ()))
        assert len(held) == len(set(held))
        # A client the coordinator fenced (session or revocation timeout) may not know yet;
        # it learns at its next heartbeat and its commits are refused by epoch meanwhile.
        live = [mid for mid in self.epoch if mid in group.members]
        client_held = [p for mid in live for p in self.owned[mid]]
        assert len(client_held) == len(set(client_held))

    @invariant()
    def members_never_run_ahead_of_the_target(self) -> None:
        group = self.groups.groups.get("g")
        if group is None:
            return
        for m in group.members.values():
            assert m.member_epoch <= group.assignment_epoch
            if m.state is MemberState.STABLE and m.member_epoch == group.assignment_epoch:
                assert m.assigned == {k: v for k, v in group.target[m.member_id].items() if v}


def test_converges_when_every_member_reports() -> None:
    """After any history, heartbeats that report what each member owns converge: every
    partition owned once, every member Stable at the target epoch."""
    machine = Reconciliation()
    try:
        for _ in range(3):
            machine.join()
        machine.grow()
        for _ in range(10):
            for mid in sorted(machine.epoch):
                machine._take(mid, machine._call(mid, machine.epoch[mid], machine.owned[mid]))
        group = machine.groups.groups["g"]
        assert group.state.value == "Stable"
        owned = sorted(p for ps in machine.owned.values() for p in ps)
        assert owned == list(range(machine.partitions))
    finally:
        machine.teardown()


TestReconciliation = Reconciliation.TestCase
TestReconciliation.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
