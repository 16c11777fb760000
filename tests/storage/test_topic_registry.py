"""The local topic registry: topics.json, its previous version, and what happens when the
file is truncated or unparsable."""

from __future__ import annotations

import logging

import pytest

from edplog import Store
from edplog.errors import InvalidPartitionsError, InvalidTopicError, TopicExistsError
from edplog.storage.topic_registry import (
    PREVIOUS_SUFFIX,
    TOPICS_FILE,
    LocalTopicRegistry,
    RegistryError,
)


def test_registry_persists_topics_ids_partitions_and_configs(tmp_path):
    reg = LocalTopicRegistry(str(tmp_path))
    info = reg.create("orders", 3, {"cleanup.policy": "compact"})
    reg.add_partitions("orders", 5)
    reg.set_config("orders", {"retention.ms": "1000"})
    again = LocalTopicRegistry(str(tmp_path)).get("orders")
    assert (again.topic_id, again.partitions, again.config) == (
        info.topic_id,
        5,
        {"retention.ms": "1000"},
    )
    with pytest.raises(TopicExistsError):
        reg.create("orders", 1, {})
    with pytest.raises(InvalidPartitionsError):
        reg.add_partitions("orders", 2)
    with pytest.raises(InvalidTopicError):
        reg.create("bad/name", 1, {})


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_topics_json_falls_back_to_the_previous_version(tmp_path, damage, caplog):
    """topics.json cut short (or garbled): the store opens from topics.json.prev with an
    error naming both files, and every partition's data is still there."""
    with Store(tmp_path) as store:
        store.create_topic("a", 2)
        store.log("a", 1).append(b"kept")
        store.create_topic("b", 1)  # the change the previous version lacks
    path = tmp_path / TOPICS_FILE
    text = path.read_bytes()
    path.write_bytes(
        {"truncated": text[: len(text) // 2], "garbage": b"\x00{{", "empty": b""}[damage]
    )
    with caplog.at_level(logging.ERROR, logger="edplog.storage"):
        with Store(tmp_path) as store:
            assert store.topics() == {"a": 2, "b": 1}  # b's directory is adopted
            assert [r.value for r in store.log("a", 1).read(0)] == [b"kept"]
    assert any(
        TOPICS_FILE in r.getMessage() and PREVIOUS_SUFFIX in r.getMessage() for r in caplog.records
    )


def test_both_versions_unusable_is_a_clear_error(tmp_path):
    with Store(tmp_path) as store:
        store.create_topic("a", 1)
        store.create_topic("b", 1)
    (tmp_path / TOPICS_FILE).write_bytes(b"{")
    (tmp_path / (TOPICS_FILE + PREVIOUS_SUFFIX)).write_bytes(b"}")
    with pytest.raises(RegistryError) as err:
        Store(tmp_path)
    message = str(err.value)
    assert TOPICS_FILE in message and PREVIOUS_SUFFIX in message and "move both aside" in message
