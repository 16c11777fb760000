"""What a partition's leader knows of its followers: their log end offsets, when each was last
caught up, the high watermark they allow, and which of them should leave or join the ISR.

Kafka's rules. A follower's fetch offset is its log end offset. It is *caught up* at a fetch
that asks for the leader's log end offset (as of that fetch); a fetch that reaches what the
leader's log end was at the previous fetch proves it was caught up then. A follower in the
ISR that has not been caught up for ``replica.lag.time.max.ms`` is dropped from it. One that
is out of the ISR joins it again once its fetch offset reaches the high watermark and the
start of the leader's current epoch (it then has every committed record, and nothing of an
older epoch that the leader dropped), fetching with the broker epoch of its current
registration (KIP-903: a restarted broker that lost unflushed data does not rejoin on the
strength of a fetch made before its crash). The high watermark is the smallest log end offset
in the ISR, the leader's own included; it never moves back while this leader leads.

While an ISR change is being written, the high watermark is held to the *maximal* ISR: the
ISR as written plus every member the change adds (KIP-497's rule). A follower proposed for
the ISR was caught up to the high watermark when it was proposed; once the write lands, the
controller may elect it, so nothing may be acknowledged that it does not hold yet. (Counting
only the old ISR while the write was in flight let acks=all acknowledge records the joining
follower lacked; its election right after lost them.) A member the change removes still
counts until the removal is written.

Pure bookkeeping, no I/O: the partition feeds it fetches and asks it for decisions; the ISR
changes themselves are versioned writes to ZooKeeper made by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class FollowerState:
    """One follower as its leader sees it (offsets -1 until it first fetches)."""

    broker_id: int
    log_end_offset: int = -1
    broker_epoch: int = -1
    last_fetch_ms: int = 0
    last_caught_up_ms: int = 0
    # The leader's log end offset when the follower's last fetch arrived.
    leader_end_at_last_fetch: int = -1


class ReplicaTracker:
    """The followers of one partition while this broker leads it (see the module docstring).
    ``isr`` includes the leader. Created anew at every leadership change."""

    def __init__(
        self,
        leader_id: int,
        replicas: list[int],
        isr: list[int],
        high_watermark: int,
        epoch_start_offset: int,
        now_ms: int,
    ) -> None:
        self.leader_id = leader_id
        self.isr = list(isr)
        # The ISR a change being written proposes (None: no change in flight).
        self.proposed: list[int] | None = None
        self.high_watermark = high_watermark
        self.epoch_start_offset = epoch_start_offset
        # Members of the ISR get the benefit of the doubt for one lag period: they were in
        # sync when the controller recorded them.
        self.followers = {
            r: FollowerState(r, last_caught_up_ms=now_ms if r in isr else 0)
            for r in replicas
            if r != leader_id
        }

    def set_replicas(self, replicas: list[int], now_ms: int) -> None:
        """The assignment changed (a reassignment): track new followers, forget removed ones."""
        for r in replicas:
            if r != self.leader_id and r not in self.followers:
                self.followers[r] = FollowerState(r)
        for r in [r for r in self.followers if r not in replicas]:
            del self.followers[r]

    def fetched(
        self,
        broker_id: int,
        fetch_offset: int,
        broker_epoch: int,
        leader_end_offset: int,
        now_ms: int,
    ) -> bool:
        """Record a follower's fetch; returns whether the high watermark may have moved."""
        state = self.followers.get(broker_id)
        if state is None:
            return False
        if fetch_offset >= leader_end_offset:
            state.last_caught_up_ms = now_ms
        elif state.leader_end_at_last_fetch >= 0 and fetch_offset >= state.leader_end_at_last_fetch:
            state.last_caught_up_ms = max(state.last_caught_up_ms, state.last_fetch_ms)
        state.log_end_offset = fetch_offset
        state.broker_epoch = broker_epoch
        state.last_fetch_ms = now_ms
        state.leader_end_at_last_fetch = leader_end_offset
        return broker_id in self.isr or (self.proposed is not None and broker_id in self.proposed)

    def advance_high_watermark(self, leader_end_offset: int) -> bool:
        """Raise the high watermark to the smallest log end offset in the maximal ISR (the
        ISR and what a change in flight adds); returns whether it moved. A follower that has
        not fetched yet holds it where it is."""
        lowest = leader_end_offset
        members = self.isr if not self.proposed else {*self.isr, *self.proposed}
        for r in members:
            if r == self.leader_id:
                continue
            state = self.followers.get(r)
            if state is None or state.log_end_offset < 0:
                return False
            lowest = min(lowest, state.log_end_offset)
        if lowest > self.high_watermark:
            self.high_watermark = lowest
            return True
        return False

    def lagging(self, now_ms: int, lag_time_max_ms: int) -> list[int]:
        """ISR followers not caught up within ``lag_time_max_ms``: to be dropped."""
        return [
            r
            for r in self.isr
            if r != self.leader_id
            and r in self.followers
            and now_ms - self.followers[r].last_caught_up_ms > lag_time_max_ms
        ]

    def joinable(self, current_broker_epochs: dict[int, int]) -> list[int]:
        """Followers out of the ISR that may join it now: caught up to the high watermark and
        to the start of this leader's epoch, fetching with their live registration's epoch."""
        out = []
        for r, state in self.followers.items():
            if r in self.isr or state.log_end_offset < 0:
                continue
            if state.log_end_offset < max(self.high_watermark, self.epoch_start_offset):
                continue
            live_epoch = current_broker_epochs.get(r)
            if live_epoch is None or (state.broker_epoch >= 0 and state.broker_epoch != live_epoch):
                continue
            out.append(r)
        return out
