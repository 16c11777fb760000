"""docs/cluster.md says what the broker does with each cluster property, and its admin
examples run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cluster_helpers import InProcessCluster, wait_for
from confluent_kafka.admin import AdminClient, NewTopic
from docs_examples import example, run_example

from edplog.broker.config import BrokerConfig
from edplog.broker.properties import HONOURED, NO_EFFECT
from edplog.broker.zookeeper_settings import PROPERTIES as ZOOKEEPER_SECURITY
from edplog.cluster import zookeeper_server
from edplog.config import BROKER_DEFAULTS
from edplog.errors import InvalidConfigError

PAGE = Path(__file__).resolve().parents[2] / "docs" / "cluster.md"


def _table_properties() -> list[str]:
    text = PAGE.read_text()
    section = text.split("## Properties", 1)[1].split("\n## ", 1)[0]
    names = []
    for line in section.splitlines():
        m = re.match(r"\| `([a-z.]+)`(?: / `([a-z.]+)`)? \|", line)
        if m:
            names += [n for n in m.groups() if n]
    return names


def test_every_documented_property_is_read_or_accepted():
    """Each property the table lists is one the broker reads (or accepts, documented as
    such); none of them makes it refuse to start."""
    names = _table_properties()
    assert "zookeeper.connect" in names and len(names) >= 20
    for name in names:
        assert name in HONOURED or name in NO_EFFECT or name in BROKER_DEFAULTS, name
        if name in ZOOKEEPER_SECURITY:
            continue  # they go together: tests/cluster/test_zookeeper_security.py
        if name not in ("listeners", "advertised.listeners", "zookeeper.connect"):
            value = "true" if name.endswith(".enable") else "1"
            if name.startswith(("inter.broker.", "security.inter.broker.")):
                value = "PLAINTEXT"  # a listener's name
            BrokerConfig.from_properties({name: value})


@pytest.mark.parametrize("name", ["zookeeper.sasl.client", "replica.selector.class"])
def test_the_settings_documented_as_not_implemented_are_refused(name):
    """The page says these refuse the start, naming the property."""
    assert name.split(".")[0] + "." in PAGE.read_text() or name in PAGE.read_text()
    with pytest.raises(InvalidConfigError, match=name):
        BrokerConfig.from_properties({name: "x"})


def test_documented_defaults_are_the_broker_defaults():
    """The defaults in the table are the ones a broker starts with."""
    config = BrokerConfig.from_properties({"zookeeper.connect": "127.0.0.1:1/x"})
    assert config.zookeeper_session_timeout_ms == 6000
    assert config.replica_lag_time_max_ms == 30000
    assert config.unclean_leader_election_enable is False
    assert config.controlled_shutdown_enable is True
    assert config.offsets_topic_replication_factor == 3
    assert config.clustered
    assert not BrokerConfig.from_properties({}).clustered


@pytest.mark.skipif(not zookeeper_server.available(), reason="ZooKeeper is not installed")
def test_the_admin_examples_run_against_a_four_broker_cluster(zookeeper, tmp_path):
    """docs/cluster.md's ElectLeaders and reassignment examples, run as written but for the
    bootstrap address, against four brokers with `orders` on brokers 1-3: the preferred
    election answers (ELECTION_NOT_NEEDED is a documented answer), and the reassignment to
    [2, 3, 4] is carried out (Metadata shows it and broker 4 joins the ISR)."""
    elect = example("cluster.md", "elect_leaders")
    reassign = example("cluster.md", "c.call(45")
    with InProcessCluster(zookeeper, tmp_path, 4) as c:
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        admin.create_topics([NewTopic("orders", 1, replica_assignment=[[1, 2, 3]])])[
            "orders"
        ].result(30)
        c.wait_isr("orders", 0, 3)
        run_example(elect.replace("127.0.0.2:9092", c.bootstrap), "docs/cluster.md")
        run_example(reassign.replace("127.0.0.2:9092", c.any_bootstrap()), "docs/cluster.md")
        wait_for(
            lambda: sorted(c.partition("orders", 0).replicas) == [2, 3, 4],
            timeout_s=60,
            what="the reassignment to [2, 3, 4]",
        )
        assert 4 in c.wait_isr("orders", 0, 3, timeout_s=60).isr
