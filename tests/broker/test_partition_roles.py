"""A replicated partition's roles (edplog.broker.partition): the high watermark and the
acks=-1 waits follow leadership. Real logs in a temporary directory, a real event loop."""

from __future__ import annotations

import asyncio

from edplog.broker.partition import Partition, Role
from edplog.errors import ErrorCode
from edplog.records import build_batch
from edplog.storage import Log


def _partition(tmp_path):
    return Partition("t", 0, Log(str(tmp_path / "t-0")), node_id=1)


def test_acks_wait_for_the_isr_and_fail_when_leadership_moves(tmp_path):
    """A leader with a follower in its ISR: a record waits until the follower's fetch passes
    it (the high watermark moves only then); a wait that starts after the broker became a
    follower, or at another leader epoch than its append's, is answered
    NOT_LEADER_OR_FOLLOWER at once instead of never."""

    async def scenario():
        p = _partition(tmp_path)
        p.make_leader(3, [1, 2], [1, 2], version=0, now_ms=0)
        p.append(memoryview(bytearray(build_batch([(None, b"a")]))), None)
        assert p.high_watermark == 0
        waiting = p.wait_replicated(1, 3)
        await asyncio.sleep(0)
        assert not waiting.done()
        p.follower_fetched(2, 1, -1, now_ms=1)
        assert p.high_watermark == 1
        assert await waiting == ErrorCode.NONE
        p.append(memoryview(bytearray(build_batch([(None, b"b")]))), None)
        assert p.wait_replicated(2, 2).result() == ErrorCode.NOT_LEADER_OR_FOLLOWER
        pending = p.wait_replicated(2, 3)
        p.make_follower(2, 4, [1, 2], [1, 2], version=1)
        assert await pending == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert p.role is Role.FOLLOWER
        assert p.wait_replicated(2, 4).result() == ErrorCode.NOT_LEADER_OR_FOLLOWER
        p.log.close()

    asyncio.run(scenario())


def test_a_new_leader_below_its_epoch_start_says_its_offsets_lag(tmp_path):
    """Leader at epoch 3 with follower 2: two records, not yet fetched (high watermark 0).
    Led again at epoch 5, the epoch starts at 2 while the high watermark is 0: the offsets
    lag the election (ListOffsets answers OFFSET_NOT_AVAILABLE) until follower 2's fetch at 2
    lifts the high watermark to the epoch's start; a follower never says so."""
    p = _partition(tmp_path)
    p.make_leader(3, [1, 2], [1, 2], version=0, now_ms=0)
    p.append(memoryview(bytearray(build_batch([(None, b"a"), (None, b"b")]))), None)
    assert not p.offsets_lag_election  # the epoch started at 0
    p.make_follower(2, 4, [1, 2], [1, 2], version=1)
    assert not p.offsets_lag_election
    p.make_leader(5, [1, 2], [1, 2], version=2, now_ms=0)
    assert (p.high_watermark, p.log_end_offset) == (0, 2)
    assert p.offsets_lag_election
    p.follower_fetched(2, 2, -1, now_ms=1)
    assert p.high_watermark == 2
    assert not p.offsets_lag_election
    p.log.close()
