"""Topic configuration under Kafka's names (edplog.config): parsing, defaults, aliases, and
loud refusal of unknown names and bad values."""

from __future__ import annotations

import pytest

from edplog.config import BROKER_DEFAULTS, TOPIC_PROPERTIES, LogConfig, normalize, parse_value
from edplog.errors import InvalidConfigError


def test_defaults_are_kafkas() -> None:
    c = LogConfig()
    assert c["segment.bytes"] == 1 << 30 and c["retention.ms"] == 7 * 86_400_000
    assert c["cleanup.policy"] == ("delete",) and c.delete and not c.compact
    assert c["max.message.bytes"] == 1048588 and c["min.insync.replicas"] == 1


def test_overrides_win_over_defaults_and_aliases_use_underscores() -> None:
    c = LogConfig({"segment_bytes": "4096"}, defaults={"segment.bytes": 8192, "retention.ms": 5})
    assert c.segment_bytes == 4096 and c["retention.ms"] == 5
    assert normalize(None, cleanup_policy="compact,delete") == {"cleanup.policy": "compact,delete"}
    assert LogConfig({"cleanup.policy": "compact,delete"}).compact


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("segment.bytes", "abc"),
        ("segment.bytes", 10),  # below Kafka's minimum of 14
        ("retention.ms", -2),
        ("cleanup.policy", "forever"),
        ("compression.type", "brotli"),
        ("preallocate", "maybe"),
        ("max.message.bytes", 2**31),
        ("flush.messages", True),
    ],
)
def test_bad_values_are_refused_naming_the_property(name, value) -> None:
    with pytest.raises(InvalidConfigError, match=name.replace(".", r"\.")):
        parse_value(name, value)


def test_unknown_names_are_refused() -> None:
    with pytest.raises(InvalidConfigError, match="unknown topic config"):
        normalize({"segment.byte": 1})


def test_every_broker_default_names_a_topic_property() -> None:
    assert set(BROKER_DEFAULTS.values()) <= set(TOPIC_PROPERTIES)
    assert LogConfig().as_strings()["cleanup.policy"] == "delete"
