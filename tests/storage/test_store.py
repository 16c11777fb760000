"""Store: topics and partitions in a data directory, configs persisted, bad names and
configs refused, every log recovered on reopen."""

from __future__ import annotations

import os

import pytest

from edplog import Store
from edplog.errors import (
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidTopicError,
    TopicExistsError,
    UnknownTopicError,
)


def test_store_create_list_delete_and_reopen(tmp_path):
    """Topics created with configs persist across reopen with their data; a deleted topic is
    gone from disk and from the listing."""
    with Store(tmp_path) as store:
        store.create_topic("orders", 3, {"retention.ms": 1234, "segment_bytes": 100_000})
        store.create_topic("gone", 1)
        for p in range(3):
            for i in range(10):
                store.log("orders", p).append(b"p%d-%d" % (p, i))
        store.log("gone", 0).append(b"x")
        store.delete_topic("gone")
        assert store.topics() == {"orders": 3}
        assert not any(n.startswith("gone") for n in os.listdir(tmp_path))
        with pytest.raises(UnknownTopicError):
            store.log("gone", 0)
    with Store(tmp_path) as store:
        assert store.topics() == {"orders": 3}
        assert store.topic_config("orders") == {"retention.ms": "1234", "segment.bytes": "100000"}
        assert store.log("orders", 1).config["retention.ms"] == 1234
        for p in range(3):
            assert [r.value for r in store.log("orders", p).read(0)] == [
                b"p%d-%d" % (p, i) for i in range(10)
            ]


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "spaces here", "é", "x" * 250])
def test_store_rejects_invalid_topic_names(tmp_path, name):
    with Store(tmp_path) as store:
        with pytest.raises(InvalidTopicError):
            store.create_topic(name)
        assert store.topics() == {}


@pytest.mark.parametrize(
    "config",
    [
        {"no.such.property": 1},
        {"retention.ms": "soon"},
        {"segment.bytes": 1},
        {"cleanup.policy": "shred"},
        {"compression.type": "brotli"},
        {"unclean.leader.election.enable": "maybe"},
    ],
)
def test_store_rejects_invalid_configs_without_touching_disk(tmp_path, config):
    with Store(tmp_path) as store:
        with pytest.raises(InvalidConfigError):
            store.create_topic("t", 1, config)
        assert store.topics() == {}
        assert not os.path.exists(tmp_path / "t-0")


def test_store_rejects_duplicates_and_bad_partition_counts(tmp_path):
    with Store(tmp_path) as store:
        store.create_topic("t", 2)
        with pytest.raises(TopicExistsError):
            store.create_topic("t", 1)
        with pytest.raises(InvalidPartitionsError):
            store.create_topic("u", 0)
        with pytest.raises(InvalidPartitionsError):
            store.add_partitions("t", 1)
        store.add_partitions("t", 4)
        assert store.topics() == {"t": 4}


def test_store_reopen_recovers_every_log_after_a_crash(tmp_path):
    """Logs never closed (a crash) with a torn tail in one partition: reopening the store
    recovers each log to its last whole batch and keeps everything flushed."""
    store = Store(tmp_path)
    store.create_topic("t", 2)
    for p in range(2):
        log = store.log("t", p)
        for i in range(50):
            log.append(b"%d" % i)
        log.flush()
    # Tear the tail of partition 1 as a crash would (the handles are simply abandoned).
    seg = store.log("t", 1).segments[-1].path
    with open(seg, "ab") as f:
        f.write(b"\x00\x00\x00\x00\x00\x00\x00\x32torn")
    image = {}
    for p in range(2):
        d = tmp_path / f"t-{p}"
        image[p] = {n: (d / n).read_bytes() for n in os.listdir(d)}
    store.close()
    for p in range(2):  # put the crash image back (no clean-shutdown marker)
        d = tmp_path / f"t-{p}"
        for n in os.listdir(d):
            os.unlink(d / n)
        for n, data in image[p].items():
            (d / n).write_bytes(data)
    with Store(tmp_path) as store:
        for p in range(2):
            log = store.log("t", p)
            assert [r.value for r in log.read(0)] == [b"%d" % i for i in range(50)]
        assert store.log("t", 1).recovery_report
        assert store.log("t", 0).recovery_report == []


def test_store_alter_config_applies_and_persists(tmp_path):
    with Store(tmp_path) as store:
        store.create_topic("t", 1)
        store.alter_topic_config("t", {"retention.bytes": 999})
        assert store.log("t", 0).config["retention.bytes"] == 999
        with pytest.raises(InvalidConfigError):
            store.alter_topic_config("t", {"retention.bytes": "lots"})
    with Store(tmp_path) as store:
        assert store.log("t", 0).config["retention.bytes"] == 999
