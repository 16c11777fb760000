"""The controller (edplog.cluster.controller) against a real ZooKeeper. Brokers are simulated
the way a broker shows itself to the controller: a ZkClient of its own holding its
registration znode; a broker's session ending is that client stopping."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient

from edplog.cluster.controller import Controller
from edplog.cluster.partition_state import assign_replicas, reconcile
from edplog.cluster.zk import BrokerRegistration, PartitionState, ZkClient

SESSION_MS = 3000


def wait_for(what: str, predicate: Callable[[], object], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


class Cluster:
    """ZkClients for an admin, for brokers and for controllers, all stopped at the end."""

    def __init__(self, connect: str) -> None:
        self.connect = connect
        self._clients: list[ZkClient] = []
        self.admin = self.client()
        self.brokers: dict[int, ZkClient] = {}
        self.controllers: list[Controller] = []

    def client(self, session_ms: int = SESSION_MS) -> ZkClient:
        zk = ZkClient(self.connect, session_timeout_ms=session_ms)
        zk.start()
        self._clients.append(zk)
        return zk

    def start_broker(self, broker_id: int) -> ZkClient:
        zk = self.client()
        zk.register_broker(BrokerRegistration(broker_id, "127.0.0.1", 9000 + broker_id))
        self.brokers[broker_id] = zk
        return zk

    def stop_broker(self, broker_id: int) -> None:
        self.brokers.pop(broker_id).stop()

    def controller(self, broker_id: int = 100, **kwargs: object) -> Controller:
        kwargs.setdefault("auto_leader_rebalance", False)
        ctl = Controller(self.client(), broker_id, **kwargs)  # type: ignore[arg-type]
        ctl.start()
        self.controllers.append(ctl)
        return ctl

    def active(self, **kwargs: object) -> Controller:
        ctl = self.controller(**kwargs)
        wait_for("controller active", lambda: ctl.active)
        return ctl

    def state(self, topic: str, partition: int = 0) -> PartitionState | None:
        return self.admin.partition_state(topic, partition)

    def wait_state(
        self, topic: str, partition: int, leader: int, isr: tuple[int, ...]
    ) -> PartitionState:
        def matches() -> bool:
            st = self.state(topic, partition)
            return st is not None and st.leader == leader and st.isr == isr

        wait_for(f"{topic}-{partition} led by {leader} with isr {isr}", matches)
        st = self.state(topic, partition)
        assert st is not None
        return st

    def close(self) -> None:
        for ctl in self.controllers:
            ctl.stop()
        for zk in reversed(self._clients):
            zk.stop()


@pytest.fixture
def cluster(zookeeper: str) -> Iterator[Cluster]:
    c = Cluster(zookeeper)
    try:
        yield c
    finally:
        c.close()


def test_new_topics_get_states_and_topics_from_before_activation_too(cluster):
    """A topic that exists before the controller starts gets its states on activation (a
    replica that is not live is left out of the ISR); a topic created while it is active gets
    them at once: leader the first live replica, ISR the live replicas, leader epoch 0."""
    for b in (1, 2, 3):
        cluster.start_broker(b)
    cluster.admin.create_topic("early", {0: (4, 1)}, {})
    ctl = cluster.active()
    st = cluster.wait_state("early", 0, 1, (1,))
    assert st.leader_epoch == 0 and st.controller_epoch == ctl.epoch == 1
    cluster.admin.create_topic("t", {0: (1, 2, 3), 1: (2, 3, 1)}, {})
    assert cluster.wait_state("t", 0, 1, (1, 2, 3)).leader_epoch == 0
    assert cluster.wait_state("t", 1, 2, (2, 3, 1)).leader_epoch == 0


def test_leader_fails_over_when_its_broker_session_ends(cluster):
    """Broker 1 leads t-0 and follows t-1; its session ends: t-0 is led by 2 and both ISRs
    lose 1, each with the leader epoch bumped by one."""
    for b in (1, 2, 3):
        cluster.start_broker(b)
    cluster.active()
    cluster.admin.create_topic("t", {0: (1, 2, 3), 1: (2, 1, 3)}, {})
    cluster.wait_state("t", 0, 1, (1, 2, 3))
    cluster.wait_state("t", 1, 2, (2, 1, 3))
    cluster.stop_broker(1)
    assert cluster.wait_state("t", 0, 2, (2, 3)).leader_epoch == 1
    assert cluster.wait_state("t", 1, 2, (2, 3)).leader_epoch == 1


def test_offline_partition_keeps_its_isr_and_a_returning_member_leads(cluster):
    """ISR [1,2]: 1 dies (2 leads), 2 dies (offline, ISR [2] kept). 1 returns: it is not in
    sync, so the partition stays offline (clean election). 2 returns: it leads again."""
    cluster.start_broker(1)
    cluster.start_broker(2)
    cluster.active()
    cluster.admin.create_topic("t", {0: (1, 2)}, {})
    cluster.wait_state("t", 0, 1, (1, 2))
    cluster.stop_broker(1)
    cluster.wait_state("t", 0, 2, (2,))
    cluster.stop_broker(2)
    offline = cluster.wait_state("t", 0, -1, (2,))
    cluster.start_broker(1)
    cluster.admin.create_topic("marker", {0: (1,)}, {})
    cluster.wait_state("marker", 0, 1, (1,))  # the controller has seen broker 1 by now
    assert cluster.state("t") == offline
    cluster.start_broker(2)
    assert cluster.wait_state("t", 0, 2, (2,)).leader_epoch == offline.leader_epoch + 1


def test_unclean_election_takes_an_out_of_sync_replica_when_enabled(cluster):
    """With unclean.leader.election.enable, a partition whose ISR [1] died is led by the
    live out-of-sync replica 2, alone in the ISR."""
    cluster.start_broker(1)
    cluster.start_broker(2)
    cluster.active(unclean_leader_election=True)
    cluster.admin.create_topic("t", {0: (1, 2)}, {})
    st = cluster.wait_state("t", 0, 1, (1, 2))
    shrunk = cluster.brokers[1].update_isr("t", 0, PartitionState(1, 0, (1,), 1, st.version))
    assert shrunk is not None
    cluster.stop_broker(1)
    cluster.wait_state("t", 0, 2, (2,))


def test_topic_deletion_removes_every_znode(cluster):
    """A deletion request removes the topic's assignment, states, config and the marker."""
    cluster.start_broker(1)
    cluster.active()
    cluster.admin.create_topic("t", {0: (1,), 1: (1,)}, {"retention.ms": "5"})
    cluster.wait_state("t", 1, 1, (1,))
    cluster.admin.request_topic_deletion("t")
    wait_for("topic gone", lambda: cluster.admin.topic_names() == [])
    assert cluster.admin.topic_config("t") == {}
    wait_for("marker gone", lambda: cluster.admin.kazoo.get_children("/admin/delete_topics") == [])
    # Created again under the same name, it is a new topic with states of its own.
    cluster.admin.create_topic("t", {0: (1,)}, {})
    cluster.wait_state("t", 0, 1, (1,))


def test_new_partitions_of_an_existing_topic_get_states(cluster):
    """CreatePartitions (a CAS on the assignment adding partition 1) gets partition 1 a
    state; partition 0's is untouched."""
    cluster.start_broker(1)
    cluster.start_broker(2)
    cluster.active()
    ta = cluster.admin.create_topic("t", {0: (1, 2)}, {})
    first = cluster.wait_state("t", 0, 1, (1, 2))
    cluster.admin.set_assignment(
        type(ta)("t", ta.topic_id, {0: (1, 2), 1: (2, 1)}, {}, {}, ta.version)
    )
    cluster.wait_state("t", 1, 2, (2, 1))
    assert cluster.state("t", 0) == first


def test_preferred_election_moves_leadership_back(cluster):
    """1 (preferred) fails and returns; after its leader re-admits it to the ISR a preferred
    election makes 1 leader again and the request is removed."""
    cluster.start_broker(1)
    cluster.start_broker(2)
    cluster.active()
    cluster.admin.create_topic("t", {0: (1, 2)}, {})
    cluster.wait_state("t", 0, 1, (1, 2))
    cluster.stop_broker(1)
    st = cluster.wait_state("t", 0, 2, (2,))
    cluster.start_broker(1)
    assert cluster.brokers[2].update_isr("t", 0, PartitionState(2, 1, (2, 1), 1, st.version))
    cluster.admin.request_preferred_election([("t", 0)])
    assert cluster.wait_state("t", 0, 1, (2, 1)).leader_epoch == st.leader_epoch + 1
    wait_for("request removed", lambda: cluster.admin.preferred_election_requests()[1] == -1)


def test_auto_rebalance_restores_preferred_leaders(cluster):
    """With a 0.2 s imbalance check, a preferred replica back in the ISR leads again
    without any request."""
    cluster.start_broker(1)
    cluster.start_broker(2)
    cluster.active(auto_leader_rebalance=True, leader_imbalance_check_interval_s=0.2)
    cluster.admin.create_topic("t", {0: (1, 2)}, {})
    cluster.wait_state("t", 0, 1, (1, 2))
    cluster.stop_broker(1)
    st = cluster.wait_state("t", 0, 2, (2,))
    cluster.start_broker(1)
    assert cluster.brokers[2].update_isr("t", 0, PartitionState(2, 1, (2, 1), 1, st.version))
    cluster.wait_state("t", 0, 1, (2, 1))


def test_controlled_shutdown_moves_leadership_off_the_broker(cluster):
    """Broker 1 marks itself shutting down: it leads nothing where another ISR member exists
    and leaves those ISRs; a partition where it is the only replica keeps it."""
    for b in (1, 2, 3):
        cluster.start_broker(b)
    cluster.active()
    cluster.admin.create_topic("t", {0: (1, 2, 3), 1: (2, 1), 2: (1,)}, {})
    cluster.wait_state("t", 0, 1, (1, 2, 3))
    cluster.wait_state("t", 1, 2, (2, 1))
    solo = cluster.wait_state("t", 2, 1, (1,))
    cluster.brokers[1].begin_controlled_shutdown(1)
    cluster.wait_state("t", 0, 2, (2, 3))
    cluster.wait_state("t", 1, 2, (2,))
    assert cluster.state("t", 2) == solo
    # A later failure elsewhere never elects the shutting-down broker.
    cluster.stop_broker(2)
    cluster.wait_state("t", 0, 3, (3,))


def test_reassignment_completes_once_the_targets_are_in_sync(cluster):
    """[1,2] -> [2,3]: the assignment first lists [1,2,3] (adding 3, removing 1) and the
    state is untouched; once the leader has 3 in the ISR, leadership moves into the target,
    replicas and ISR become [2,3] and the request is removed."""
    for b in (1, 2, 3):
        cluster.start_broker(b)
    cluster.active()
    cluster.admin.create_topic("t", {0: (1, 2)}, {})
    st = cluster.wait_state("t", 0, 1, (1, 2))
    cluster.admin.request_reassignment({("t", 0): (2, 3)})

    def moving() -> bool:
        ta = cluster.admin.assignment("t")
        return ta.partitions[0] == (1, 2, 3) and ta.adding == {0: (3,)} and ta.removing == {0: (1,)}

    wait_for("reassignment started", moving)
    assert cluster.state("t") == st
    assert cluster.brokers[1].update_isr("t", 0, PartitionState(1, 0, (1, 2, 3), 1, st.version))
    done = cluster.wait_state("t", 0, 2, (2, 3))
    assert done.leader_epoch == 1
    ta = cluster.admin.assignment("t")
    assert ta.partitions == {0: (2, 3)} and ta.adding == {} and ta.removing == {}
    wait_for("request removed", lambda: cluster.admin.reassignment_requests()[1] == -1)


def test_reassignment_can_be_cancelled(cluster):
    """A pending [1,2] -> [3] move is cancelled: the assignment is [1,2] again, with nothing
    adding or removing, the state keeps its leader, and the request is removed."""
    for b in (1, 2, 3):
        cluster.start_broker(b)
    cluster.active()
    cluster.admin.create_topic("t", {0: (1, 2)}, {})
    st = cluster.wait_state("t", 0, 1, (1, 2))
    cluster.admin.request_reassignment({("t", 0): (3,)})
    wait_for("started", lambda: cluster.admin.assignment("t").adding == {0: (3,)})
    cluster.admin.request_reassignment({("t", 0): None})
    wait_for("cancelled", lambda: cluster.admin.assignment("t").adding == {})
    ta = cluster.admin.assignment("t")
    assert ta.partitions == {0: (1, 2)} and ta.removing == {}
    assert cluster.state("t") == st
    wait_for("request removed", lambda: cluster.admin.reassignment_requests()[1] == -1)


def test_controller_failover_to_a_higher_epoch(cluster):
    """Two controllers: one is active; stopped, it resigns and the other takes over with the
    next epoch and handles the next broker failure with it."""
    for b in (1, 2):
        cluster.start_broker(b)
    first, second = cluster.controller(101), cluster.controller(102)
    wait_for("one active", lambda: first.active or second.active)
    active, standby = (first, second) if first.active else (second, first)
    assert not standby.active
    cluster.admin.create_topic("t", {0: (1, 2)}, {})
    cluster.wait_state("t", 0, 1, (1, 2))
    active.stop()
    wait_for("standby took over", lambda: standby.active)
    assert standby.epoch == active.epoch + 1 and not active.active
    assert cluster.admin.controller_id() == standby.broker_id
    cluster.stop_broker(1)
    assert cluster.wait_state("t", 0, 2, (2,)).controller_epoch == standby.epoch


def test_broker_restarting_between_two_looks_loses_leadership(cluster):
    """Broker 1 (leader) ends its session and registers again at once: whether the
    controller sees the gap or only a new registration (new epoch, same id), leadership
    moves to 2 and 1 leaves the ISR, as for a failure."""
    for b in (1, 2, 3):
        cluster.start_broker(b)
    cluster.active()
    cluster.admin.create_topic("t", {0: (1, 2, 3)}, {})
    cluster.wait_state("t", 0, 1, (1, 2, 3))
    cluster.stop_broker(1)
    cluster.start_broker(1)
    cluster.wait_state("t", 0, 2, (2, 3))


def test_controller_whose_session_expires_resigns_and_campaigns_again(cluster):
    """The active controller's session is expired (closed from a twin connection): it
    resigns, then on its new session wins again with the next epoch and keeps handling
    broker failures with it."""
    for b in (1, 2):
        cluster.start_broker(b)
    ctl = cluster.active()
    cluster.admin.create_topic("t", {0: (1, 2)}, {})
    cluster.wait_state("t", 0, 1, (1, 2))
    session_id, password = ctl.zk.kazoo.client_id
    twin = KazooClient(hosts=ctl.zk.hosts, client_id=(session_id, password))
    twin.start(timeout=10)
    twin.stop()
    twin.close()
    wait_for("active again with epoch 2", lambda: ctl.active and ctl.epoch == 2)
    cluster.stop_broker(1)
    assert cluster.wait_state("t", 0, 2, (2,)).controller_epoch == 2


def test_activation_handles_what_happened_while_there_was_no_controller(cluster):
    """With no controller running, broker 1 (leader of t-0) dies and broker 3 marks itself
    shutting down while leading t-1: the next controller, on activation, elects 2 for t-0
    and moves t-1's leadership to 2."""
    for b in (1, 2, 3):
        cluster.start_broker(b)
    first = cluster.active()
    cluster.admin.create_topic("t", {0: (1, 2), 1: (3, 2)}, {})
    cluster.wait_state("t", 0, 1, (1, 2))
    cluster.wait_state("t", 1, 3, (3, 2))
    first.stop()
    assert cluster.admin.controller_id() is None
    cluster.stop_broker(1)
    cluster.brokers[3].begin_controlled_shutdown(3)
    second = cluster.active()
    assert second.epoch == 2
    cluster.wait_state("t", 0, 2, (2,))
    cluster.wait_state("t", 1, 2, (2,))


def test_a_leader_that_restarted_while_there_was_no_controller_loses_leadership(cluster):
    """With no controller running, broker 1 (leader of t-0, and sole replica of u-0) ends its
    session and registers again. Its states were written before its new registration, and a
    broker leads nothing on such a state (it may speak of a failed incarnation): the next
    controller, on activation, treats 1 as bounced. t-0 moves to 2 with 1 out of the ISR; u-0
    has no one else, so 1 is elected again, at a new epoch and by a write made after its
    registration (the state's zxid at or past the registration's czxid)."""
    for b in (1, 2, 3):
        cluster.start_broker(b)
    first = cluster.active()
    cluster.admin.create_topic("t", {0: (1, 2, 3)}, {})
    cluster.admin.create_topic("u", {0: (1,)}, {})
    cluster.wait_state("t", 0, 1, (1, 2, 3))
    before = cluster.wait_state("u", 0, 1, (1,))
    first.stop()
    cluster.stop_broker(1)
    registered = cluster.start_broker(1).register_broker(
        BrokerRegistration(1, "127.0.0.1", 9001)
    )  # the broker epoch (the czxid) of its new registration
    assert cluster.state("u", 0).zxid < registered
    cluster.active()
    cluster.wait_state("t", 0, 2, (2, 3))
    wait_for("u-0 rewritten", lambda: cluster.state("u", 0).zxid >= registered)
    after = cluster.wait_state("u", 0, 1, (1,))
    assert after.leader_epoch > before.leader_epoch


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_states_converge_to_the_rules_after_random_failures_and_restarts(cluster, seed):
    """Twenty random broker stops and starts over four brokers (at least one left running),
    with six partitions of three replicas: once the controller has caught up, every state is
    what the rules want for the brokers then live (nothing more to decide), every leader is
    live, assigned and in its ISR, and ISRs only hold assigned replicas."""
    rng = random.Random(seed)
    for b in (1, 2, 3, 4):
        cluster.start_broker(b)
    ctl = cluster.active()
    assignment = assign_replicas({b: None for b in (1, 2, 3, 4)}, 6, 3, start_index=0)
    cluster.admin.create_topic("t", assignment, {})
    for p in assignment:
        cluster.wait_state("t", p, assignment[p][0], assignment[p])
    for _ in range(20):
        broker = rng.choice((1, 2, 3, 4))
        if broker in cluster.brokers and len(cluster.brokers) > 1:
            cluster.stop_broker(broker)
        elif broker not in cluster.brokers:
            cluster.start_broker(broker)
        time.sleep(rng.choice((0, 0.01, 0.05)))
    live = set(cluster.brokers)

    def settled() -> bool:
        if set(cluster.admin.live_brokers()) != live:
            return False
        for p, replicas in assignment.items():
            st = cluster.state("t", p)
            if st is None or reconcile(st, replicas, live, ctl.epoch) is not None:
                return False
        return True

    wait_for("states settled", settled)
    for p, replicas in assignment.items():
        st = cluster.state("t", p)
        assert set(st.isr) <= set(replicas) and st.isr
        if st.leader != -1:
            assert st.leader in live and st.leader in st.isr and st.leader in replicas


ZOMBIE = textwrap.dedent(
    """
    import sys, time
    from kazoo.exceptions import KazooException
    from edplog.cluster.controller import Controller
    from edplog.cluster.zk import ControllerMovedError, PartitionState, ZkClient

    zk = ZkClient(sys.argv[1], session_timeout_ms=2000)
    zk.start()
    ctl = Controller(zk, 1, auto_leader_rebalance=False)
    ctl.start()
    deadline = time.monotonic() + 30
    while not (ctl.active and zk.partition_state("t", 1)) and time.monotonic() < deadline:
        time.sleep(0.02)
    epoch_version = ctl.epoch_zk_version
    # Decisions taken before the pause, with the versions read then.
    decided = {p: zk.partition_state("t", p) for p in (0, 1)}
    print("ready", ctl.epoch, flush=True)
    sys.stdin.readline()
    for p, st in decided.items():
        zombie = PartitionState(st.leader, st.leader_epoch + 1, st.isr[:1], ctl.epoch)
        for _ in range(200):  # the client reconnects on a new session first
            try:
                zk.fenced(epoch_version).set_state("t", p, zombie, st.version).commit()
                print("applied", p, flush=True)
            except ControllerMovedError:
                print("rejected", p, flush=True)
            except KazooException:
                time.sleep(0.05)
                continue
            break
    deadline = time.monotonic() + 30
    while ctl.active and time.monotonic() < deadline:
        time.sleep(0.02)
    print("active", ctl.active, flush=True)
    ctl.stop()
    zk.stop()
    """
)


def test_zombie_controller_writes_are_rejected(cluster):
    """A controller in another process is SIGSTOPped past its 2 s session; another controller
    wins (epoch 2) and moves t-0's leadership after a broker failure. SIGCONTed, the zombie
    commits the decisions it took before the pause: both fenced multi-ops fail, including
    the one for t-1 whose state version never changed (a plain CAS would have applied it),
    the states are the new controller's, and the zombie resigns."""
    for b in (2, 3):
        cluster.start_broker(b)
    cluster.admin.create_topic("t", {0: (2, 3), 1: (3,)}, {})
    zombie = subprocess.Popen(
        [sys.executable, "-c", ZOMBIE, cluster.connect],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert zombie.stdout is not None and zombie.stdin is not None
        ready = zombie.stdout.readline()
        if not ready:
            zombie.wait(30)
            raise AssertionError(f"the zombie exited early: {zombie.stderr.read()}")
        assert ready.split() == ["ready", "1"]
        t1_before = cluster.wait_state("t", 1, 3, (3,))
        heir = cluster.controller(9)
        os.kill(zombie.pid, signal.SIGSTOP)
        try:
            wait_for("the heir is active", lambda: heir.active)
            assert heir.epoch == 2
            cluster.stop_broker(2)
            moved = cluster.wait_state("t", 0, 3, (3,))
            assert moved.controller_epoch == 2
        finally:
            os.kill(zombie.pid, signal.SIGCONT)
        zombie.stdin.write("go\n")
        zombie.stdin.flush()
        out, err = zombie.communicate(timeout=60)
        assert out.split("\n")[:3] == ["rejected 0", "rejected 1", "active False"], err
        assert cluster.state("t", 0) == moved
        assert cluster.state("t", 1) == t1_before and t1_before.controller_epoch == 1
    finally:
        if zombie.poll() is None:
            zombie.kill()
            zombie.wait()
