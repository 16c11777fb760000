"""The leader's follower bookkeeping on its own (cluster/isr.py): the high watermark it
allows while an ISR change is being written. Each test says what was tried and what must
hold."""

from __future__ import annotations

from edplog.cluster.isr import ReplicaTracker

NOW = 1_000_000


def tracker() -> ReplicaTracker:
    """Leader 3, replicas 1-3, ISR [3, 2]; broker 1 is back and fetching."""
    t = ReplicaTracker(3, [1, 2, 3], [3, 2], high_watermark=100, epoch_start_offset=0, now_ms=NOW)
    t.fetched(2, 100, broker_epoch=7, leader_end_offset=100, now_ms=NOW)
    t.fetched(1, 100, broker_epoch=9, leader_end_offset=100, now_ms=NOW)
    return t


def test_a_follower_proposed_for_the_isr_holds_the_high_watermark_at_its_end() -> None:
    """Broker 1 caught up to the high watermark (100) and was proposed for the ISR. While
    the write is in flight the leader's log grows to 110 and broker 2 fetches all of it;
    broker 1 is still at 100. The high watermark must stay at 100 (the maximal ISR, KIP-497):
    once the write lands broker 1 may be elected, and it lacks 100-109. (Counting only the
    written ISR [3, 2] acknowledged them; a campaign's election of broker 1 then lost them.)"""
    t = tracker()
    assert t.joinable({1: 9, 2: 7, 3: 5}) == [1]
    t.proposed = [3, 1, 2]
    t.fetched(2, 110, broker_epoch=7, leader_end_offset=110, now_ms=NOW + 10)
    assert not t.advance_high_watermark(110)
    assert t.high_watermark == 100
    t.fetched(1, 106, broker_epoch=9, leader_end_offset=110, now_ms=NOW + 20)
    assert t.advance_high_watermark(110) and t.high_watermark == 106


def test_a_change_that_is_not_written_stops_holding_the_high_watermark() -> None:
    """The proposal failed (a lost race, ZooKeeper away): without it the high watermark is
    the written ISR's again, so broker 2's fetch of everything moves it to the end."""
    t = tracker()
    t.proposed = [3, 1, 2]
    t.fetched(2, 110, broker_epoch=7, leader_end_offset=110, now_ms=NOW + 10)
    assert t.high_watermark == 100
    t.proposed = None
    assert t.advance_high_watermark(110) and t.high_watermark == 110


def test_a_member_being_removed_still_counts_until_the_removal_is_written() -> None:
    """Shrinking [3, 2, 1] to [3, 2] (broker 1 lags): until written, broker 1 still holds the
    high watermark; written, it no longer does."""
    t = ReplicaTracker(
        3, [1, 2, 3], [3, 2, 1], high_watermark=100, epoch_start_offset=0, now_ms=NOW
    )
    t.fetched(2, 120, broker_epoch=7, leader_end_offset=120, now_ms=NOW)
    t.fetched(1, 100, broker_epoch=9, leader_end_offset=120, now_ms=NOW)
    t.proposed = [3, 2]
    assert not t.advance_high_watermark(120) and t.high_watermark == 100
    t.isr, t.proposed = [3, 2], None
    assert t.advance_high_watermark(120) and t.high_watermark == 120
