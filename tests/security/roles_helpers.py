"""What the role tests share: a broker with SASL PLAIN users and ACLs on, the real
``edplog security`` command, and clients that produce and consume as a user."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer

TIMEOUT_S = 30
USERS = ("alice", "bob", "carol", "admin")
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    + " ".join(f'user_{u}="{u}-secret"' for u in USERS)
    + ";"
)


def broker_props(data_dir: str, **extra: str) -> dict[str, str]:
    """A SASL_PLAINTEXT listener (CLIENTS) with PLAIN users, ACLs on, admin a super user;
    ``extra`` properties with dots spelled as underscores."""
    return {
        "log.dirs": data_dir,
        # The PLAINTEXT listener is the anonymous one, which no ACL or binding names.
        "listeners": "PLAINTEXT://127.0.0.1:0,CLIENTS://127.0.0.1:0",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CLIENTS:SASL_PLAINTEXT",
        "listener.name.clients.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.clients.plain.sasl.jaas.config": JAAS,
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": "User:admin",
        "group.initial.rebalance.delay.ms": "0",
        "authorizer.roles.reload.interval.ms": "200",
        **{k.replace("_", "."): v for k, v in extra.items()},
    }


def conf(broker: Any, user: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": broker.bootstrap_for("CLIENTS"),
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": user,
        "sasl.password": f"{user}-secret",
    }


def edplog(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``edplog`` command."""
    return subprocess.run(
        [sys.executable, "-m", "edplog", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def produce(broker: Any, user: str, topic: str, idempotent: bool = False) -> int:
    """Produce one record as ``user``; the delivery's error code (NO_ERROR when written)."""
    errors: list[Any] = []
    p = Producer(
        {
            **conf(broker, user),
            "message.timeout.ms": 10_000,
            "enable.idempotence": idempotent,
        }
    )
    p.produce(topic, b"v", on_delivery=lambda err, msg: errors.append(err))
    p.flush(TIMEOUT_S)
    assert errors, "no delivery report"
    return int(errors[0].code()) if errors[0] is not None else int(KafkaError.NO_ERROR)


def consume(broker: Any, user: str, topic: str, group: str) -> int:
    """Read one record of ``topic`` as ``user`` in ``group``: NO_ERROR once a record is read,
    or the first error the consumer meets."""
    c = Consumer(
        {
            **conf(broker, user),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
    )
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            return int(err.code()) if err is not None else int(KafkaError.NO_ERROR)
        raise AssertionError(f"neither a record nor an error in {TIMEOUT_S} s")
    finally:
        c.close()


def eventually(check: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
    """Wait until ``check()`` holds (a change the broker picks up on its next reload); the
    deadline only bounds a broken run, it never decides a passing one."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.1)
