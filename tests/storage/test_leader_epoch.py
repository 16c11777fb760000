"""The leader-epoch cache: Kafka's checkpoint file, OffsetsForLeaderEpoch answers, truncation
with the log, and what a log learns from the batches it is given or recovers."""

from __future__ import annotations

import os

import pytest

from edplog import Log
from edplog.records import build_batch
from edplog.storage.leader_epoch import FILE_NAME, LeaderEpochCache


def test_checkpoint_file_is_kafkas_text_layout(tmp_path):
    """Version line, entry count, then `epoch start-offset` lines; read back the same."""
    cache = LeaderEpochCache(str(tmp_path))
    assert cache.assign(0, 0)
    assert cache.assign(3, 120)
    assert (tmp_path / FILE_NAME).read_text() == "0\n2\n0 0\n3 120\n"
    assert LeaderEpochCache(str(tmp_path)).entries == [(0, 0), (3, 120)]


def test_end_offset_for_epoch_follows_kafka(tmp_path):
    """The latest epoch ends at the log end; an older one where the next begins; one below
    every known epoch answers with itself and the first start; one above all, -1/-1."""
    cache = LeaderEpochCache(str(tmp_path))
    cache.assign(2, 10)
    cache.assign(5, 40)
    cache.assign(7, 90)
    assert cache.end_offset_for(7, 150) == (7, 150)
    assert cache.end_offset_for(5, 150) == (5, 90)
    assert cache.end_offset_for(6, 150) == (5, 90)  # the largest epoch at or below 6
    assert cache.end_offset_for(3, 150) == (2, 40)
    assert cache.end_offset_for(1, 150) == (1, 10)
    assert cache.end_offset_for(8, 150) == (-1, -1)
    assert cache.end_offset_for(-1, 150) == (-1, -1)
    assert cache.epoch_for_offset(39) == 2
    assert cache.epoch_for_offset(40) == 5
    assert cache.epoch_for_offset(9) == -1


def test_stale_epochs_are_ignored_and_the_same_epoch_keeps_its_start(tmp_path):
    cache = LeaderEpochCache(str(tmp_path))
    cache.assign(4, 100)
    assert not cache.assign(3, 200)  # a stale leader
    assert not cache.assign(4, 150)  # the same epoch later on
    assert cache.entries == [(4, 100)]
    assert cache.assign(4, 80)  # the same epoch earlier: an unreported truncation
    assert cache.entries == [(4, 80)]


def test_truncation_from_either_end(tmp_path):
    cache = LeaderEpochCache(str(tmp_path))
    for epoch, start in ((1, 0), (2, 50), (3, 100)):
        cache.assign(epoch, start)
    cache.truncate_from_end(100)
    assert cache.entries == [(1, 0), (2, 50)]
    cache.truncate_from_start(60)
    assert cache.entries == [(2, 60)]
    assert LeaderEpochCache(str(tmp_path)).entries == [(2, 60)]


@pytest.mark.parametrize("damage", ["garbage", "short", "empty"])
def test_an_unparsable_checkpoint_is_relearnt_from_the_log(tmp_path, damage):
    """A damaged leader-epoch-checkpoint is derived data: the log opens and the epoch of its
    first batch is learnt again."""
    path = tmp_path / "log"
    with Log(path) as log:
        log.set_leader_epoch(6)
        log.append(b"x")
    content = {"garbage": "zz\n", "short": "0\n3\n6 0\n", "empty": ""}[damage]
    (path / FILE_NAME).write_text(content)
    with Log(path) as log:
        assert log.leader_epochs.entries == [(6, 0)]


def test_leader_appends_record_each_new_epoch_and_truncation_drops_them(tmp_path):
    with Log(tmp_path / "log") as log:
        log.append_batches(build_batch([(None, b"a")]), leader_epoch=0)
        log.set_leader_epoch(2)
        log.append(b"b")
        log.append_batches(build_batch([(None, b"c")]), leader_epoch=2)
        log.append_batches(build_batch([(None, b"d")]), leader_epoch=5)
        assert log.leader_epochs.entries == [(0, 0), (2, 1), (5, 3)]
        assert [r.value for r in log.read(0)] == [b"a", b"b", b"c", b"d"]
        log.truncate_to(2)
        assert log.leader_epochs.entries == [(0, 0), (2, 1)]
        assert log.leader_epochs.end_offset_for(2, log.log_end_offset) == (2, 2)


def test_follower_appends_learn_the_leaders_epochs(tmp_path):
    """Batches with their leader-assigned epochs teach a follower's cache where each began."""
    with Log(tmp_path / "leader") as leader:
        for epoch, value in ((1, b"a"), (1, b"b"), (3, b"c"), (4, b"d")):
            leader.append_batches(build_batch([(None, value)]), leader_epoch=epoch)
        data = leader.read_batches(0, 1 << 20)
    with Log(tmp_path / "follower") as follower:
        assert follower.append_as_follower(data) == (0, 3)
        assert follower.leader_epochs.entries == [(1, 0), (3, 2), (4, 3)]
    with Log(tmp_path / "follower") as follower:
        assert follower.leader_epochs.entries == [(1, 0), (3, 2), (4, 3)]


def test_recovery_relearns_epochs_of_an_unflushed_tail(tmp_path):
    """A crash after the batches reached the segment but before the cache file was written:
    recovery walks the recovered tail and learns the epochs its batches carry."""
    path = tmp_path / "log"
    log = Log(path)
    log.append_batches(build_batch([(None, b"a")]), leader_epoch=0)
    log.flush()
    log.append_batches(build_batch([(None, b"b")]), leader_epoch=9)
    # What a crash right after the write leaves: the cache without epoch 9, no clean marker.
    os.unlink(path / FILE_NAME)
    LeaderEpochCache(str(path)).assign(0, 0)
    del log  # no close: the directory is left as a killed process leaves it
    reopened = Log(path)
    try:
        assert reopened.leader_epochs.entries == [(0, 0), (9, 1)]
    finally:
        reopened.close()


def test_recovery_of_a_tail_the_checkpoint_covers_is_silent(tmp_path, caplog):
    """A killed process whose checkpoint already holds every epoch (0, 1, 2) but whose log was
    never fsynced: recovery walks the batches from the start and meets epochs 0 and 1 again.
    They are what the checkpoint says: the cache is unchanged and nothing is logged as a stale
    epoch (a warning per old epoch at every restart of a killed broker read as damage)."""
    path = tmp_path / "log"
    log = Log(path)
    for epoch, value in enumerate((b"a", b"b", b"c")):
        log.append_batches(build_batch([(None, value)]), leader_epoch=epoch)
    assert log.recovery_point == 0
    del log  # no close: the directory is left as a killed process leaves it
    with caplog.at_level("WARNING", logger="edplog.storage"):
        reopened = Log(path)
    try:
        assert reopened.leader_epochs.entries == [(0, 0), (1, 1), (2, 2)]
        assert reopened.read(0)[2].value == b"c"
        assert "below the latest epoch" not in caplog.text
    finally:
        reopened.close()
