"""The cluster's znodes: their paths and their JSON, in Kafka's ZooKeeper-era layout
(docs/cluster-internals.md). Pure data and encodings; :mod:`.zk` does the I/O."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

BROKER_IDS = "/brokers/ids"
BROKER_TOPICS = "/brokers/topics"
CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
CONFIG_TOPICS = "/config/topics"
DELETE_TOPICS = "/admin/delete_topics"
PREFERRED_ELECTION = "/admin/preferred_replica_election"
REASSIGN_PARTITIONS = "/admin/reassign_partitions"
CONTROLLED_SHUTDOWN = "/admin/controlled_shutdown"
PRODUCER_ID_BLOCK = "/latest_producer_id_block"
CLUSTER_ID = "/cluster/id"

#: Created by start() when missing. /controller_epoch starts at 0: the first controller is 1.
BASE_PATHS = (BROKER_IDS, BROKER_TOPICS, CONFIG_TOPICS, DELETE_TOPICS, CONTROLLED_SHUTDOWN)

#: Bounded retries of read-modify-write loops that lose a race (version changed under us).
CAS_ATTEMPTS = 100

_KNOWN_PROTOCOLS = frozenset({"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"})


# ---- data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerRegistration:
    broker_id: int
    host: str
    port: int
    rack: str | None = None
    endpoints: tuple[str, ...] = ()
    epoch: int = 0  # the znode's czxid (KIP-380's broker epoch); 0 when not read from zk
    # listener name -> security protocol (listener_security_protocol_map)
    protocols: tuple[tuple[str, str], ...] = ()

    def endpoint(self, listener: str) -> tuple[str, int] | None:
        """The (host, port) of this broker's listener named ``listener``, or None when it has
        no such listener (a registration without endpoints has one: PLAINTEXT)."""
        if not self.endpoints:
            return (self.host, self.port) if listener == "PLAINTEXT" else None
        for endpoint in self.endpoints:
            name, sep, address = endpoint.partition("://")
            if sep and name == listener:
                host, _, port = address.rpartition(":")
                return host.strip("[]"), int(port)
        return None


@dataclass(frozen=True)
class PartitionState:
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    controller_epoch: int
    version: int = -1  # zk data version of the state znode
    # The zxid of the write that left this state (the znode's mzxid; -1 when it was not read
    # from ZooKeeper). A broker leads on a state only if it was written after the broker's
    # registration (whose czxid is its broker epoch): one written before speaks of an
    # earlier incarnation, which may have been declared failed meanwhile.
    zxid: int = field(default=-1, compare=False)


@dataclass(frozen=True)
class TopicAssignment:
    topic: str
    topic_id: uuid.UUID
    partitions: dict[int, tuple[int, ...]]
    adding: dict[int, tuple[int, ...]]
    removing: dict[int, tuple[int, ...]]
    version: int = -1


def encode_topic_id(topic_id: uuid.UUID) -> str:
    """Kafka prints a Uuid as 22 characters of url-safe base64 without padding."""
    return base64.urlsafe_b64encode(topic_id.bytes).decode().rstrip("=")


def decode_topic_id(text: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _load(data: bytes) -> Any:
    return json.loads(data.decode())


def _now_ms() -> str:
    return str(int(time.time() * 1000))


def encode_registration(reg: BrokerRegistration) -> bytes:
    endpoints = list(reg.endpoints) or [f"PLAINTEXT://{reg.host}:{reg.port}"]
    protocols = dict(reg.protocols)
    for endpoint in endpoints:
        name = endpoint.split("://", 1)[0]
        # A listener named for a protocol uses it; other names are plain text unless the
        # broker's listener.security.protocol.map says otherwise (it registers that name).
        protocols.setdefault(name, name if name in _KNOWN_PROTOCOLS else "PLAINTEXT")
    return _json(
        {
            "version": 5,
            "host": reg.host,
            "port": reg.port,
            "endpoints": endpoints,
            "listener_security_protocol_map": protocols,
            "rack": reg.rack,
            "jmx_port": -1,
            "timestamp": _now_ms(),
        }
    )


def decode_registration(broker_id: int, data: bytes, czxid: int) -> BrokerRegistration:
    obj = _load(data)
    return BrokerRegistration(
        broker_id=broker_id,
        host=obj.get("host") or "",
        port=int(obj.get("port") or -1),
        rack=obj.get("rack"),
        endpoints=tuple(obj.get("endpoints") or ()),
        epoch=czxid,
        protocols=tuple(sorted((obj.get("listener_security_protocol_map") or {}).items())),
    )


def encode_state(st: PartitionState) -> bytes:
    return _json(
        {
            "controller_epoch": st.controller_epoch,
            "leader": st.leader,
            "version": 1,
            "leader_epoch": st.leader_epoch,
            "isr": list(st.isr),
        }
    )


def decode_state(data: bytes, version: int, zxid: int = -1) -> PartitionState:
    obj = _load(data)
    return PartitionState(
        leader=int(obj["leader"]),
        leader_epoch=int(obj["leader_epoch"]),
        isr=tuple(int(b) for b in obj["isr"]),
        controller_epoch=int(obj["controller_epoch"]),
        version=version,
        zxid=zxid,
    )


def _replica_map(obj: Mapping[str, Iterable[int]] | None) -> dict[int, tuple[int, ...]]:
    return {int(p): tuple(int(b) for b in rs) for p, rs in (obj or {}).items()}


def encode_assignment(ta: TopicAssignment) -> bytes:
    def spell(m: Mapping[int, tuple[int, ...]]) -> dict[str, list[int]]:
        return {str(p): list(m[p]) for p in sorted(m)}

    return _json(
        {
            "version": 3,
            "topic_id": encode_topic_id(ta.topic_id),
            "partitions": spell(ta.partitions),
            "adding_replicas": spell(ta.adding),
            "removing_replicas": spell(ta.removing),
        }
    )


def decode_assignment(topic: str, data: bytes, version: int) -> TopicAssignment:
    obj = _load(data)
    raw_id = obj.get("topic_id")
    return TopicAssignment(
        topic=topic,
        # Assignments written before topic ids (version < 3) have none: Kafka's zero Uuid.
        topic_id=decode_topic_id(raw_id) if raw_id else uuid.UUID(int=0),
        partitions=_replica_map(obj.get("partitions")),
        adding=_replica_map(obj.get("adding_replicas")),
        removing=_replica_map(obj.get("removing_replicas")),
        version=version,
    )


def topic_path(topic: str) -> str:
    return f"{BROKER_TOPICS}/{topic}"


def state_path(topic: str, partition: int) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions/{partition}/state"


def config_path(topic: str) -> str:
    return f"{CONFIG_TOPICS}/{topic}"


def _split_chroot(connect: str) -> tuple[str, str]:
    hosts, sep, chroot = connect.partition("/")
    return hosts, ("/" + chroot.rstrip("/")) if sep and chroot.strip("/") else ""
