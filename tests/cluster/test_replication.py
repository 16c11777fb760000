"""Replication in a real cluster: brokers in this process on their own loopback addresses,
a real ZooKeeper, real clients (confluent-kafka) and edplog's own client for raw answers."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from cluster_helpers import InProcessCluster, wait_for
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kazoo.client import KazooClient

from edplog.client import EARLIEST, LATEST, Client, FetchPosition, KafkaError
from edplog.cluster import zookeeper_server
from edplog.cluster.launcher import LocalCluster
from edplog.errors import ErrorCode
from edplog.records import build_batch

pytestmark = pytest.mark.skipif(
    not zookeeper_server.available(), reason="ZooKeeper is not installed"
)


def create(cluster, name, partitions=1, rf=3, **config):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, partitions, rf, config={k.replace("_", "."): v for k, v in config.items()})]
    )
    futures[name].result(30)
    for p in range(partitions):
        cluster.wait_isr(name, p, rf)


def produce(cluster, topic, values, **conf):
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            **conf,
        }
    )
    acked = {}
    errors = []

    def report(err, msg):
        if err is None:
            acked[msg.value()] = (msg.partition(), msg.offset())
        else:
            errors.append(err)

    for v in values:
        producer.produce(topic, v, on_delivery=report)
        producer.poll(0)
    assert producer.flush(60) == 0
    return acked, errors


def read_all(cluster, topic, partition=0):
    consumer = Consumer(
        {"bootstrap.servers": cluster.bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    try:
        tp = TopicPartition(topic, partition, 0)
        low, high = consumer.get_watermark_offsets(tp, timeout=10)
        consumer.assign([tp])
        out = []
        while len(out) < high:
            msg = consumer.poll(10)
            assert msg is not None, f"read stopped at {len(out)} of {high}"
            if msg.error():
                raise KafkaException(msg.error())
            out.append((msg.offset(), msg.value()))
        return out
    finally:
        consumer.close()


def test_metadata_lists_every_broker_and_a_full_isr(cluster):
    """A topic created with replication factor 3 on 3 brokers: Metadata lists the three
    brokers and the controller, and each partition a leader among its three replicas with
    all three in sync."""
    create(cluster, "md", partitions=3)
    md = cluster.metadata(["md"])
    assert sorted(b.node_id for b in md.brokers) == [1, 2, 3]
    assert md.controller_id in (1, 2, 3)
    leaders = set()
    for p in md.topics["md"].partitions:
        assert sorted(p.replicas) == [1, 2, 3]
        assert sorted(p.isr) == [1, 2, 3]
        assert p.leader_id in p.replicas
        leaders.add(p.leader_id)
    assert len(leaders) == 3, "placement spreads the leaders over the brokers"


def test_acks_all_records_are_on_every_replica_byte_for_byte(cluster):
    """1000 records produced with acks=all: every acknowledged record is on all three
    replicas, and the three logs hold the same bytes (offsets, epochs and all)."""
    create(cluster, "same")
    values = [f"v{i}".encode() for i in range(1000)]
    acked, errors = produce(cluster, "same", values)
    assert not errors and len(acked) == 1000
    end = max(off for _, off in acked.values()) + 1
    wait_for(
        lambda: all(cluster.local_log(b, "same", 0).log_end_offset >= end for b in (1, 2, 3)),
        what="every replica to reach the log end",
    )
    images = {b: cluster.local_log(b, "same", 0).read_batches(0, 1 << 24) for b in (1, 2, 3)}
    assert images[1] == images[2] == images[3]
    assert [v for _, v in read_all(cluster, "same")] == values


def test_followers_fetch_by_topic_id_with_their_broker_epoch(cluster):
    """KIP-903 needs the follower's broker epoch at the leader: the replica fetchers name
    topics by id, so their fetches are v15+ and carry ReplicaState. After 3 acks=all records
    the leader of a replication-factor-3 partition knows each follower's log end offset (3)
    and the broker epoch of its live registration (the czxid in ZooKeeper), which is what
    keeps a restarted follower from rejoining the ISR on a fetch made before its crash."""
    create(cluster, "kip903")
    acked, errors = produce(cluster, "kip903", [b"a", b"b", b"c"])
    assert not errors
    lead = cluster.partition("kip903", 0).leader_id
    leader = cluster.brokers[lead].broker
    partition = leader.replicas.hosted[("kip903", 0)]
    epochs = leader.node.cache.broker_epochs()

    def known() -> bool:
        followers = partition.tracker.followers
        return all(
            followers[b].log_end_offset == 3 and followers[b].broker_epoch == epochs[b]
            for b in followers
        )

    wait_for(known, what="the followers' offsets and broker epochs at the leader")
    assert len(partition.tracker.followers) == 2
    assert all(epoch > 0 for epoch in epochs.values())


def test_a_follower_answers_not_leader(cluster):
    """Produce and consumer Fetch sent to a broker that only follows the partition get
    NOT_LEADER_OR_FOLLOWER (6): clients then find the leader in Metadata."""
    create(cluster, "nl")
    leader = cluster.partition("nl", 0).leader_id
    follower = next(b for b in (1, 2, 3) if b != leader)
    with Client(cluster.brokers[follower].bootstrap) as c:
        with pytest.raises(KafkaError) as info:
            c.produce("nl", 0, build_batch([(None, b"x")]), acks=1)
        assert info.value.error_code == 6
        (res,) = c.fetch([("nl", 0, 0)], max_wait_ms=0)
        assert res.error_code == 6


def test_a_follower_answers_the_epoch_before_not_leader(cluster):
    """A broker that only follows the partition, asked with the leader epoch the sender
    expects (KIP-320), answers as Kafka does: the epoch first. A newer epoch than its
    replica's gets UNKNOWN_LEADER_EPOCH (75): the state reached the sender first, as when a
    follower is told of its new leader before the leader applied it; the follower asks
    again within 50 ms, where NOT_LEADER_OR_FOLLOWER would have paused it for
    replica.fetch.backoff.ms (1 s) and held the new leader's acks=all produces that long. An
    older epoch gets FENCED_LEADER_EPOCH (74); its own epoch NOT_LEADER_OR_FOLLOWER (6). For
    OffsetsForLeaderEpoch, a follower's Fetch and ListOffsets."""
    create(cluster, "epochs")
    first = cluster.partition("epochs", 0).leader_id
    cluster.stop(first)  # a new leader at epoch 1, so that an older epoch exists
    part = wait_for(
        lambda: (p := cluster.partition("epochs", 0)).leader_id not in (-1, first) and p,
        what="a new leader",
    )
    epoch = part.leader_epoch
    assert epoch >= 1
    follower = next(b for b in cluster.brokers if b != part.leader_id)
    with Client(cluster.brokers[follower].bootstrap) as c:
        wait_for(
            lambda: c.metadata(["epochs"]).topics["epochs"].partitions[0].leader_epoch == epoch,
            what="the follower to know the epoch",
        )
        for asked, code in (
            (epoch + 1, ErrorCode.UNKNOWN_LEADER_EPOCH),
            (epoch - 1, ErrorCode.FENCED_LEADER_EPOCH),
            (epoch, ErrorCode.NOT_LEADER_OR_FOLLOWER),
        ):
            with pytest.raises(KafkaError) as info:
                c.offset_for_leader_epoch(
                    "epochs", 0, 0, current_leader_epoch=asked, replica_id=first
                )
            assert info.value.error_code == code, asked
            (res,) = c.fetch(
                [FetchPosition("epochs", 0, 0, current_leader_epoch=asked)],
                max_wait_ms=0,
                replica_id=first,
            )
            assert res.error_code == code, asked
            with pytest.raises(KafkaError) as info:
                c.list_offsets("epochs", 0, LATEST, current_leader_epoch=asked)
            assert info.value.error_code == code, asked


def test_leader_stop_fails_over_with_no_acknowledged_loss(cluster):
    """The leader stops while an idempotent acks=all producer runs: a new leader is elected
    from the ISR, the producer's retries land there, and a full read finds every
    acknowledged record exactly once."""
    create(cluster, "fo")
    first, errors = produce(cluster, "fo", [f"a{i}".encode() for i in range(300)])
    assert not errors
    leader = cluster.partition("fo", 0).leader_id
    cluster.stop(leader)
    wait_for(
        lambda: cluster.partition("fo", 0).leader_id not in (-1, leader),
        what="a new leader",
    )
    second, errors = produce(cluster, "fo", [f"b{i}".encode() for i in range(300)])
    assert not errors
    read = [v for _, v in read_all(cluster, "fo")]
    assert sorted(read) == sorted([*first, *second])
    assert len(read) == len(set(read)) == 600


def test_acks_all_is_refused_below_min_insync_replicas(zookeeper, tmp_path):
    """Replication factor 2 with min.insync.replicas=2: with one replica's broker stopped,
    the ISR shrinks to the leader and acks=all is refused with NOT_ENOUGH_REPLICAS (19);
    acks=1 is still taken."""
    with InProcessCluster(zookeeper, tmp_path, 2, default_replication_factor="2") as c:
        create(c, "min", rf=2)
        leader = c.partition("min", 0).leader_id
        other = 1 if leader == 2 else 2
        c.stop(other)
        c.wait_isr("min", 0, 1)
        with Client(c.brokers[leader].bootstrap) as client:
            with pytest.raises(KafkaError) as info:
                client.produce("min", 0, build_batch([(None, b"x")]), acks=-1)
            assert info.value.error_code == 19
            assert client.produce("min", 0, build_batch([(None, b"y")]), acks=1) >= 0


def test_controlled_shutdown_moves_leadership_before_the_broker_stops(cluster):
    """A leader stopped gracefully (controlled.shutdown.enable, the default) first hands its
    leaderships to other in-sync replicas; an acks=all producer running meanwhile sees only
    retriable errors (none reach its delivery reports), and every record it was told was
    written is there."""
    create(cluster, "cs", partitions=3)
    leader = cluster.partition("cs", 0).leader_id
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
        }
    )
    acked, errors = [], []

    def report(err, msg):
        (errors if err is not None else acked).append(err or msg.value())

    # Watch ZooKeeper: the leadership must move while the broker is still registered.
    zk = KazooClient(hosts=cluster.zookeeper)
    zk.start(timeout=10)
    events = []
    zk.DataWatch(
        "/brokers/topics/cs/partitions/0/state",
        lambda data, stat: events.append(("state", json.loads(data)["leader"])) if data else None,
    )
    zk.ChildrenWatch("/brokers/ids", lambda ids: events.append(("registered", str(leader) in ids)))
    stopper = threading.Thread(target=cluster.stop, args=(leader,))
    for i in range(3000):
        if i == 500:
            stopper.start()
        producer.produce("cs", f"c{i}".encode(), partition=i % 3, on_delivery=report)
        producer.poll(0)
        if i % 100 == 0:
            producer.flush(10)
    assert producer.flush(60) == 0
    stopper.join(60)
    zk.stop()
    zk.close()
    assert not errors
    moved = next(i for i, e in enumerate(events) if e[0] == "state" and e[1] != leader)
    gone = next(i for i, e in enumerate(events) if e == ("registered", False))
    assert moved < gone, events
    md = cluster.metadata(["cs"])
    assert all(p.leader_id not in (-1, leader) for p in md.topics["cs"].partitions)
    read = [v for p in range(3) for _, v in read_all(cluster, "cs", p)]
    assert sorted(read) == sorted(acked) and len(acked) == 3000


def test_a_returning_leader_truncates_what_it_alone_had_by_leader_epoch(zookeeper, tmp_path):
    """KIP-101: broker L leads alone (its follower F stopped) and takes 5 acks=1 records; L
    stops; F comes back and, by unclean election (the topic's override enables it), leads at
    a new epoch and takes 3 records; L comes back as a follower. L must truncate its 5
    records by leader epoch (not by high watermark) and end up byte-identical to F: the
    acks=1 records are lost, as unclean election documents, and no offset holds two values."""
    with InProcessCluster(
        zookeeper,
        tmp_path,
        2,
        default_replication_factor="2",
        min_insync_replicas="1",
    ) as c:
        create(c, "div", rf=2, unclean_leader_election_enable="true")  # a topic override
        first, errors = produce(c, "div", [f"a{i}".encode() for i in range(10)])
        assert not errors
        lead = c.partition("div", 0).leader_id
        follow = 1 if lead == 2 else 2
        c.stop(follow)
        c.wait_isr("div", 0, 1)
        with Client(c.brokers[lead].bootstrap) as client:
            for i in range(5):
                client.produce("div", 0, build_batch([(None, f"x{i}".encode())]), acks=1)
        c.stop(lead)
        c.start(follow)
        wait_for(lambda: c.partition("div", 0).leader_id == follow, what="the unclean election")
        later, errors = produce(c, "div", [f"y{i}".encode() for i in range(3)])
        assert not errors
        c.start(lead)
        c.wait_isr("div", 0, 2)
        end = c.local_log(follow, "div", 0).log_end_offset
        wait_for(lambda: c.local_log(lead, "div", 0).log_end_offset == end, what="catch-up")
        image = c.local_log(follow, "div", 0).read_batches(0, 1 << 24)
        assert c.local_log(lead, "div", 0).read_batches(0, 1 << 24) == image
        values = [v for _, v in read_all(c, "div")]
        assert values == [*first, *later]


def test_brokers_talk_to_zookeeper_and_to_leaders_from_their_own_address(cluster):
    """Each broker's ZooKeeper session and its replica fetchers' connections leave from its
    own loopback address, so a firewall rule between two addresses cuts exactly that link
    (the partition faults rely on it)."""
    create(cluster, "src", partitions=3)
    produce(cluster, "src", [b"x"] * 30)
    for b, background in cluster.brokers.items():
        broker = background.broker
        zk_socket = broker.node.zk.kazoo._connection._socket
        assert zk_socket.getsockname()[0] == cluster.host(b)
        fetchers = broker.replication.fetchers.values()
        assert fetchers, f"broker {b} follows something"
        for fetcher in fetchers:
            client = wait_for(lambda f=fetcher: f._client, what="a fetcher connection")
            assert client._sock.getsockname()[0] == cluster.host(b)


def test_acks_all_waits_for_a_silent_follower_until_the_isr_drops_it(cluster):
    """One follower stops fetching (its replica fetchers are stopped; the broker stays up):
    an acks=all produce cannot be answered before the ISR drops it — with a 1 s request
    timeout it is answered REQUEST_TIMED_OUT (7) — and once replica.lag.time.max.ms has
    passed the ISR shrinks to two, which min.insync.replicas=2 accepts. The silent broker
    restarted fetches again and rejoins the ISR."""
    create(cluster, "slow")
    state = cluster.partition("slow", 0)
    silent = next(b for b in state.replicas if b != state.leader_id)
    background = cluster.brokers[silent]
    replication = background.broker.replication

    async def stop_fetching():
        for fetcher in list(replication.fetchers.values()):
            await fetcher.stop()

    asyncio.run_coroutine_threadsafe(stop_fetching(), background._loop).result(10)
    with Client(cluster.brokers[state.leader_id].bootstrap) as client:
        with pytest.raises(KafkaError) as info:
            client.produce("slow", 0, build_batch([(None, b"t")]), acks=-1, timeout_ms=1000)
        assert info.value.error_code == 7
        shrunk = cluster.wait_isr("slow", 0, 2)
        assert silent not in shrunk.isr
        assert client.produce("slow", 0, build_batch([(None, b"u")]), acks=-1) >= 0
    cluster.stop(silent)
    cluster.start(silent)
    assert silent in cluster.wait_isr("slow", 0, 3).isr


def test_a_new_leader_answers_offset_not_available_until_its_high_watermark_catches_up(tmp_path):
    """KIP-207. Leader X, followers Y and Z (assignment [X, Y, Z], Z not the controller);
    5 acks=all records are committed everywhere. Z is frozen (SIGSTOP; long session and lag
    time keep it in the ISR) and 5 acks=1 records reach X and Y only: X's high watermark stays
    at 5. X shuts down cleanly, Y leads at a new epoch that starts at 10 with a high watermark
    of 5, which Z's fetch would lift. Until then ListOffsets for the end and for a time must
    answer OFFSET_NOT_AVAILABLE (78), not an end of 5 that a client may already have passed;
    the earliest offset is answered. Z resumed, the end becomes 10 and a fresh consumer reads
    all 10 records."""
    with LocalCluster(
        tmp_path,
        3,
        session_timeout_ms=30_000,
        properties={"replica.lag.time.max.ms": "60000", "min.insync.replicas": "1"},
    ) as c:
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        controller = admin.list_topics(timeout=10).controller_id
        z = next(b for b in c.broker_ids if b != controller)
        x, y = (b for b in c.broker_ids if b != z)
        admin.create_topics([NewTopic("kip207", 1, replica_assignment=[[x, y, z]])])[
            "kip207"
        ].result(30)
        isr = lambda: admin.list_topics("kip207", timeout=10).topics["kip207"].partitions[0]  # noqa: E731
        wait_for(lambda: isr().leader == x and len(isr().isrs) == 3, what="the full ISR")
        with Client(c.address(x)) as client:
            for i in range(5):
                client.produce("kip207", 0, build_batch([(None, f"a{i}".encode())]), acks=-1)
            time.sleep(1)  # Y learns the high watermark 5 from its next fetches
            c.pause(z)
            for i in range(5):
                client.produce("kip207", 0, build_batch([(None, f"b{i}".encode())]), acks=1)
            assert client.list_offsets("kip207", 0, LATEST).offset == 5
        c.terminate(x)
        wait_for(lambda: _leader(c, y, "kip207") == y, what="Y leading")
        with Client(c.address(y)) as client:
            for spec in (LATEST, 0):
                with pytest.raises(KafkaError) as refused:
                    client.list_offsets("kip207", 0, spec)
                assert refused.value.error_code == ErrorCode.OFFSET_NOT_AVAILABLE
            assert client.list_offsets("kip207", 0, EARLIEST).offset == 0
            c.resume(z)
            wait_for(
                lambda: _end_or_none(client, "kip207") == 10,
                what="the end once Z fetched from Y",
            )
        values = [v for _, v in read_all(c, "kip207")]
        assert values == [f"a{i}".encode() for i in range(5)] + [f"b{i}".encode() for i in range(5)]


def _leader(c, broker_id, topic):
    """The leader broker ``broker_id`` reports for partition 0 of ``topic`` (-1 if none)."""
    with Client(c.address(broker_id)) as client:
        meta = client.metadata([topic])
    return meta.topics[topic].partitions[0].leader_id


def _end_or_none(client, topic):
    try:
        return client.list_offsets(topic, 0, LATEST).offset
    except KafkaError as exc:
        assert exc.error_code == ErrorCode.OFFSET_NOT_AVAILABLE
        return None
