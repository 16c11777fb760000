"""server.properties parsing under Kafka's property names."""

from __future__ import annotations

from edplog.broker.config import BrokerConfig, parse_properties
from edplog.broker.listeners import parse_listener


def test_properties_syntax_comments_separators_continuations() -> None:
    text = "# comment\n! also\nlog.dirs=/a,/b\nnum.partitions : 3\nlisteners PLAINTEXT://h:1\n"
    text += "long.value=one,\\\n    two\n\n"
    assert parse_properties(text) == {
        "log.dirs": "/a,/b",
        "num.partitions": "3",
        "listeners": "PLAINTEXT://h:1",
        "long.value": "one,two",
    }


def test_broker_properties_map_to_config_and_topic_defaults() -> None:
    cfg = BrokerConfig.from_properties(
        {
            "log.dirs": "/data/one,/data/two",
            "listeners": "PLAINTEXT://0.0.0.0:9093",
            "advertised.listeners": "PLAINTEXT://kafka.local:19093",
            "num.partitions": "4",
            "auto.create.topics.enable": "false",
            "message.max.bytes": "2000",
            "socket.request.max.bytes": "5000",
            "log.segment.bytes": "1048576",
            "log.retention.hours": "2",
            "log.retention.ms": "60000",
        }
    )
    assert cfg.data_dir == "/data/one"
    assert (cfg.host, cfg.port) == ("0.0.0.0", 9093)
    assert cfg.advertised == ("kafka.local", 19093)
    assert cfg.num_partitions == 4 and cfg.auto_create_topics is False
    assert cfg.message_max_bytes == 2000 and cfg.socket_request_max_bytes == 5000
    defaults = cfg.store_defaults()
    assert defaults["segment.bytes"] == "1048576"
    assert defaults["retention.ms"] == "60000"  # the finest unit wins, as in Kafka
    assert defaults["max.message.bytes"] == "2000"


def test_unlimited_coarse_retention_and_store_property_names() -> None:
    cfg = BrokerConfig.from_properties(
        {
            "log.retention.hours": "-1",
            "log.roll.hours": "1",
            "log.preallocate": "true",
            "log.cleaner.delete.retention.ms": "1000",
            "log.index.size.max.bytes": "4096",
        }
    )
    defaults = cfg.store_defaults()
    assert defaults["retention.ms"] == "-1"  # unlimited stays unlimited, not -1 hour
    assert defaults["segment.ms"] == "3600000"
    assert defaults["preallocate"] == "true"
    assert defaults["delete.retention.ms"] == "1000"
    assert defaults["segment.index.bytes"] == "4096"


def test_listener_forms() -> None:
    assert parse_listener("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listener("PLAINTEXT://:9092,SSL://:9093") == ("0.0.0.0", 9092)
    assert BrokerConfig(host="0.0.0.0", port=9).advertised == ("127.0.0.1", 9)


def test_broker_applies_retention_periodically(tmp_path):
    """log.retention.check.interval.ms: the broker deletes expired segments by itself."""
    import time

    from edplog.broker.config import BrokerConfig
    from edplog.broker.runner import BackgroundBroker

    config = BrokerConfig.from_properties(
        {"log.retention.check.interval.ms": "100"}, data_dir=str(tmp_path), port=0
    )
    with BackgroundBroker(config) as broker:
        store = broker.broker.store
        store.create_topic("old", 1, {"retention.ms": "1000", "segment.bytes": "16384"})
        log = store.log("old", 0)
        for _ in range(3):
            log.append(b"x" * 100, timestamp_ms=1_000)
            log.roll()
        log.append(b"fresh")
        deadline = time.monotonic() + 20
        while log.log_start_offset < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.log_start_offset == 3
        assert [r.value for r in log.read(3)] == [b"fresh"]


def test_retention_check_interval_is_not_a_retention_time():
    """log.retention.check.interval.ms ends in .ms but sets how often retention runs."""
    from edplog.broker.config import BrokerConfig

    cfg = BrokerConfig.from_properties(
        {"log.retention.check.interval.ms": "100", "log.retention.bytes": "5000"}
    )
    assert "retention.ms" not in cfg.topic_defaults
    assert cfg.topic_defaults["retention.bytes"] == "5000"
    assert cfg.extra["log.retention.check.interval.ms"] == "100"


import pytest  # noqa: E402

from edplog.errors import InvalidConfigError  # noqa: E402


@pytest.mark.parametrize(
    ("props", "named"),
    [
        ({"listeners": "SSL://127.0.0.1:9093"}, "SSL"),
        ({"listeners": "SASL_PLAINTEXT://127.0.0.1:9093"}, "SASL_PLAINTEXT"),
        ({"listeners": "PLAINTEXT://:9092,SSL://:9093"}, "SSL"),
        (
            {"listeners": "CLIENT://:9092", "listener.security.protocol.map": "CLIENT:SASL_SSL"},
            "CLIENT",
        ),
        (
            {"listeners": "SASL_PLAINTEXT://:9092", "sasl.enabled.mechanisms": "GSSAPI"},
            "GSSAPI",
        ),
        ({"ssl.keymanager.algorithm": "SunX509"}, "ssl.keymanager.algorithm"),
        ({"listener.name.ssl.ssl.provider": "SunJSSE"}, "listener.name.ssl.ssl.provider"),
        ({"authorizer.class.name": "com.example.CustomAuthorizer"}, "authorizer"),
        ({"zookeeper.ssl.client.enable": "true"}, "zookeeper.ssl.client.enable"),
        ({"replica.selector.class": "x.RackAwareReplicaSelector"}, "replica.selector.class"),
        ({"security.inter.broker.protocol": "SSL"}, "security.inter.broker.protocol: brokers"),
        ({"security.inter.broker.protocol": "GSSAPI"}, "security.inter.broker.protocol=GSSAPI"),
        ({"process.roles": "controller"}, "process.roles"),
        ({"controller.quorum.voters": "1@a:9093,2@b:9093"}, "controller.quorum.voters"),
        (
            {
                "listeners": "A://:1,B://:2",
                "listener.security.protocol.map": "A:PLAINTEXT,B:PLAINTEXT",
                "zookeeper.connect": "127.0.0.1:2181",
            },
            "reach each other on listener PLAINTEXT, which is not one of listeners",
        ),
    ],
)
def test_settings_the_broker_cannot_honour_are_refused(props, named) -> None:
    """Never a plaintext, unauthenticated or lone broker that believes otherwise: the start
    stops, naming what is not implemented."""
    with pytest.raises(InvalidConfigError, match=named):
        BrokerConfig.from_properties(props)


def test_kafkas_single_node_kraft_properties_start() -> None:
    """Kafka 4's own server.properties for one combined node means the same here."""
    cfg = BrokerConfig.from_properties(
        {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": "1@localhost:9093",
            "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093",
            "inter.broker.listener.name": "PLAINTEXT",
            "advertised.listeners": "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": (
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"
            ),
            "num.network.threads": "3",
            "num.io.threads": "8",
            "log.dirs": "/tmp/kraft-combined-logs",
            "offsets.topic.replication.factor": "1",
            "log.retention.hours": "168",
        }
    )
    assert (cfg.host, cfg.port, cfg.node_id) == ("0.0.0.0", 9092, 1)
    assert cfg.advertised == ("localhost", 9092)
    assert cfg.unknown_properties == []


def test_unknown_property_names_are_warned_about(tmp_path, caplog) -> None:
    import logging

    from edplog.broker.runner import BackgroundBroker

    cfg = BrokerConfig.from_properties(
        {"log.dirs": str(tmp_path), "listeners": "PLAINTEXT://127.0.0.1:0", "num.partitons": "3"}
    )
    assert cfg.unknown_properties == ["num.partitons"]
    with caplog.at_level(logging.WARNING, logger="edplog.broker"):
        with BackgroundBroker(cfg):
            pass
    assert any("num.partitons" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("props", "named"),
    [
        ({"num.partitions": "abc"}, "num.partitions"),
        ({"num.partitions": "0"}, "num.partitions"),
        ({"message.max.bytes": "-5"}, "message.max.bytes"),
        ({"log.segment.bytes": "12"}, "log.segment.bytes"),
        ({"auto.create.topics.enable": "maybe"}, "auto.create.topics.enable"),
        ({"listeners": "PLAINTEXT://host:abc"}, "port"),
    ],
)
def test_bad_values_are_refused_with_the_property_name(props, named) -> None:
    with pytest.raises(InvalidConfigError, match=named):
        BrokerConfig.from_properties(props).store_defaults()
