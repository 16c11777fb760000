"""The fault campaign's workload: idempotent acks=all producers, an optional poller and the
final full read, all logging to one JSONL history for tests/cluster/checker.py.

Producers are threads, each with its own confluent-kafka Producer (``acks=all``,
``enable.idempotence=true``); producer ``i`` sends the unique values ``p<i>-0``, ``p<i>-1``,
... round-robin over the partitions, logging ``invoke`` before each produce and ``ok`` (with
the acknowledged partition and offset), ``fail`` (the broker definitely did not store it) or
``info`` (unknown) from its delivery report. A poller reads every partition from offset 0 and
logs each record as a ``poll``. Every loop is bounded by a count and a time.

The failover clock (:func:`failover_times`) measures, for each nemesis event the history
holds, the time from the event to the next acknowledged send on each partition it affected:
a liveness report, never a pass/fail criterion.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

#: Delivery errors after which the broker has definitely not stored the record: refused
#: before the append (NOT_ENOUGH_REPLICAS), or never sent at all. Anything else (a timeout,
#: a lost connection, NOT_ENOUGH_REPLICAS_AFTER_APPEND) is indeterminate.
DEFINITE_FAILURES = frozenset(
    {
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.INVALID_RECORD,
        KafkaError._PURGE_QUEUE,  # never left the client's queue
    }
)

PRODUCER_CONFIG = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    # Long enough to ride through a failover (session timeout + election); a message still
    # undelivered then is indeterminate.
    "message.timeout.ms": 60000,
    "request.timeout.ms": 10000,
    "retry.backoff.ms": 100,
    "retry.backoff.max.ms": 500,
    "reconnect.backoff.ms": 50,
    "reconnect.backoff.max.ms": 500,
    "topic.metadata.refresh.interval.ms": 1000,
    # Reconnect failures during a fault are expected; the history records what matters.
    "log_level": 2,
}


class History:
    """A thread-safe JSONL history; ``time`` is seconds since it was opened."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close)
        self._lock = threading.Lock()
        self.start = time.monotonic()

    def now(self) -> float:
        return round(time.monotonic() - self.start, 6)

    def log(self, **record: Any) -> dict[str, Any]:
        record.setdefault("time", self.now())
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")
        return record

    def event(self, kind: str, partitions: Iterable[int] = (), **details: Any) -> dict[str, Any]:
        """A nemesis event (checked by nobody, timed by the failover clock)."""
        return self.log(
            process="nemesis",
            type="info",
            f="nemesis",
            value=kind,
            partitions=sorted(partitions),
            **details,
        )

    def flush(self) -> None:
        with self._lock:
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_topic(
    bootstrap: str,
    topic: str,
    *,
    partitions: int,
    replication_factor: int,
    config: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create ``topic`` and wait until every partition has a leader in Metadata."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(
        topic,
        num_partitions=partitions,
        replication_factor=replication_factor,
        config=config or {},
    )
    admin.create_topics([new], request_timeout=timeout_s)[topic].result(timeout_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic, timeout=5).topics.get(topic)
        if (
            meta is not None
            and meta.error is None
            and len(meta.partitions) == partitions
            and all(p.leader >= 0 for p in meta.partitions.values())
        ):
            return
        time.sleep(0.2)
    raise TimeoutError(f"topic {topic} has no leader for every partition after {timeout_s} s")


def _outcome(err: KafkaError) -> str:
    return "fail" if err.code() in DEFINITE_FAILURES else "info"


#: Fresh producers (new producer ids) a producer thread may start after fatal errors.
MAX_PRODUCER_RESTARTS = 20


class _ProducerThread(threading.Thread):
    """Producer ``index``: values ``p<index>-<seq>``. A fatal error (librdkafka gives up on
    its idempotent state) is recorded and a fresh producer carries on with the next values,
    so one broker bug does not end the workload."""

    def __init__(self, work: Workload, index: int) -> None:
        super().__init__(name=f"producer-{index}", daemon=True)
        self.work = work
        self.index = index
        self.fatal_errors: list[str] = []
        self._fatal = False
        self.next_seq = 0

    def run(self) -> None:
        for _ in range(MAX_PRODUCER_RESTARTS + 1):
            self._fatal = False
            self._incarnation()
            if not self._fatal:
                return

    def _incarnation(self) -> None:
        work, history = self.work, self.work.history

        def on_error(err: KafkaError) -> None:
            if err.fatal():
                self._note_fatal(str(err))

        producer = Producer(
            {
                "bootstrap.servers": work.bootstrap,
                "client.id": f"chaos-p{self.index}",
                "error_cb": on_error,
                **PRODUCER_CONFIG,
                **work.producer_config,
            }
        )

        def report(err: KafkaError | None, msg: Any) -> None:
            value = msg.value().decode()
            if err is None:
                history.log(
                    process=self.index,
                    type="ok",
                    f="send",
                    partition=msg.partition(),
                    value=value,
                    offset=msg.offset(),
                )
            else:
                history.log(
                    process=self.index,
                    type=_outcome(err),
                    f="send",
                    partition=msg.partition(),
                    value=value,
                    error=err.name(),
                )

        try:
            self._send(producer, report)
        # A fatal producer error: librdkafka raises it in poll, and confluent-kafka may then
        # surface it as a SystemError from the next call a delivery callback makes.
        except (KafkaException, SystemError) as exc:
            self._note_fatal(str(exc))
        # Deliver (or time out) everything in flight: reports arrive within message.timeout.ms
        # (after a fatal error, at once: librdkafka fails them all).
        try:
            remaining = producer.flush(work.flush_timeout_s)
        except (KafkaException, SystemError) as exc:
            remaining = len(producer)
            self._note_fatal(str(exc))
        if remaining:
            history.log(
                process=self.index,
                type="info",
                f="client-error",
                value=f"{remaining} messages undelivered at the end",
            )

    def _note_fatal(self, error: str) -> None:
        if not self._fatal:
            self._fatal = True
            self.fatal_errors.append(error)
            self.work.history.log(process=self.index, type="info", f="client-error", value=error)

    def _send(self, producer: Producer, report: Any) -> None:
        work, history = self.work, self.work.history
        interval = 1.0 / work.rate_per_producer if work.rate_per_producer else 0.0
        next_send = time.monotonic()
        while self.next_seq < work.max_sends:
            if work.stopping.is_set() or time.monotonic() > work.deadline or self._fatal:
                break
            seq = self.next_seq
            self.next_seq += 1
            partition = (seq + self.index) % work.partitions
            value = f"p{self.index}-{seq}"
            history.log(
                process=self.index, type="invoke", f="send", partition=partition, value=value
            )
            for _ in range(10_000):  # the local queue is bounded; wait for room, bounded too
                try:
                    producer.produce(
                        work.topic, value.encode(), partition=partition, on_delivery=report
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
            if interval:
                next_send += interval
                pause = next_send - time.monotonic()
                if pause > 0:
                    producer.poll(pause)
        work.sent[self.index] = self.next_seq


class _PollerThread(threading.Thread):
    def __init__(self, work: Workload, index: int) -> None:
        super().__init__(name=f"poller-{index}", daemon=True)
        self.work = work
        self.index = index

    def run(self) -> None:
        work = self.work
        process = f"c{self.index}"
        consumer = Consumer(
            {
                "bootstrap.servers": work.bootstrap,
                "group.id": f"chaos-poller-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                # A reset would hide a truncation below our position: report it instead.
                "auto.offset.reset": "error",
                "topic.metadata.refresh.interval.ms": 1000,
                "log_level": 2,
            }
        )
        try:
            consumer.assign(
                [TopicPartition(work.topic, p, OFFSET_BEGINNING) for p in range(work.partitions)]
            )
            # Past the producers' deadline, keep reading until they are all done.
            limit = work.deadline + work.flush_timeout_s + 5
            while time.monotonic() < limit:
                if work.stopping.is_set() and work.producers_done.is_set():
                    break
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    work.history.log(
                        process=process, type="info", f="client-error", value=str(msg.error())
                    )
                    continue
                work.history.log(
                    process=process,
                    type="ok",
                    f="poll",
                    partition=msg.partition(),
                    offset=msg.offset(),
                    value=msg.value().decode(),
                )
        finally:
            consumer.close()


class Workload:
    """``producers`` producer threads (and ``pollers`` poller threads) against ``topic``,
    which has ``partitions`` partitions; each producer sends at most ``max_sends`` values,
    stopping after ``max_seconds`` (or :meth:`stop`), at ``rate_per_producer`` per second."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        history: History,
        *,
        partitions: int | None = None,
        producers: int = 2,
        pollers: int = 0,
        max_sends: int = 1_000_000,
        max_seconds: float = 60.0,
        rate_per_producer: float = 200.0,
        flush_timeout_s: float = 90.0,
        producer_config: dict[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.history = history
        if partitions is None:
            admin = AdminClient({"bootstrap.servers": bootstrap})
            partitions = len(admin.list_topics(topic, timeout=10).topics[topic].partitions)
        self.partitions = partitions
        self.max_sends = max_sends
        self.max_seconds = max_seconds
        self.rate_per_producer = rate_per_producer
        self.flush_timeout_s = flush_timeout_s
        self.producer_config = dict(producer_config or {})
        self.stopping = threading.Event()
        self.producers_done = threading.Event()
        self.deadline = time.monotonic() + max_seconds
        self.sent: dict[int, int] = {}
        self._producers = [_ProducerThread(self, i) for i in range(producers)]
        self._pollers = [_PollerThread(self, i) for i in range(pollers)]

    def start(self) -> Workload:
        self.deadline = time.monotonic() + self.max_seconds
        for thread in self._producers + self._pollers:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop sending; in-flight sends still get their reports."""
        self.stopping.set()

    def join(self, timeout_s: float) -> bool:
        """Wait for the producers (then the pollers) to finish; True when all have."""
        deadline = time.monotonic() + timeout_s
        for thread in self._producers:
            thread.join(max(0.0, deadline - time.monotonic()))
        if not any(t.is_alive() for t in self._producers):
            self.producers_done.set()
            self.stopping.set()
        for thread in self._pollers:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._producers + self._pollers)

    def fatal_errors(self) -> list[str]:
        """Every fatal producer error, in producer order."""
        return [error for t in self._producers for error in t.fatal_errors]


#: ListOffsets answers after which the final read asks again (a failover in progress).
_WATERMARK_RETRIES = {
    KafkaError.OFFSET_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError._TIMED_OUT,
}


def _high_watermark(consumer: Consumer, topic: str, partition: int, deadline: float) -> int:
    """The partition's high watermark from its leader; a retriable answer (a leader elected a
    moment ago answers OFFSET_NOT_AVAILABLE until its high watermark passes the start of its
    epoch, KIP-207) is asked again until ``deadline``."""
    while True:
        try:
            return int(
                consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            )
        except KafkaException as exc:
            error = exc.args[0]
            again = error.retriable() or error.code() in _WATERMARK_RETRIES
            if not again or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _settled_high_watermark(consumer: Consumer, topic: str, partition: int, deadline: float) -> int:
    """The high watermark once it stops moving (the producers have stopped: it reaches the
    leader's log end as soon as the followers' next fetches report theirs). Read at once, an
    acks=1 record the leader had taken a moment before could lie past it, and the final read
    would call it lost while every replica holds it."""
    end = _high_watermark(consumer, topic, partition, deadline)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        again = _high_watermark(consumer, topic, partition, deadline)
        if again == end:
            break
        end = again
    return end


def final_read(
    bootstrap: str, topic: str, history: History, *, timeout_s: float = 60.0
) -> dict[int, int]:
    """Read every partition of ``topic`` from offset 0 to its high watermark (once it has
    settled) with a fresh consumer, logging each record as a ``final-read``; returns the
    number read per partition. A partition not read to its end within ``timeout_s`` is logged
    as a ``fail`` final read (the checker then does not call the history valid)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-final-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
            "enable.partition.eof": True,
            "log_level": 2,
        }
    )
    deadline = time.monotonic() + timeout_s
    counts: dict[int, int] = {}
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        partitions = sorted(meta.partitions)
        ends: dict[int, int] = {}
        for p in partitions:
            ends[p] = _settled_high_watermark(consumer, topic, p, deadline)
            counts[p] = 0
        history.log(
            process="final",
            type="invoke",
            f="final-read",
            value=None,
            ends={str(p): e for p, e in ends.items()},
        )
        todo = {p for p in partitions if ends[p] > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
        while todo and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    history.log(
                        process="final", type="info", f="client-error", value=str(msg.error())
                    )
                continue
            p = msg.partition()
            history.log(
                process="final",
                type="ok",
                f="final-read",
                partition=p,
                offset=msg.offset(),
                value=msg.value().decode(),
            )
            counts[p] += 1
            if msg.offset() + 1 >= ends[p]:
                todo.discard(p)
        for p in sorted(todo):
            history.log(
                process="final",
                type="fail",
                f="final-read",
                partition=p,
                value=None,
                reason=f"not read to offset {ends[p]} in {timeout_s} s",
            )
    finally:
        consumer.close()
    history.flush()
    return counts


def failover_times(history: Iterable[dict[str, Any]]) -> list[float]:
    """For each nemesis event and each partition it names, the seconds from the event to the
    next acknowledged send on that partition (events never followed by one are left out)."""
    records = sorted(history, key=lambda r: float(r["time"]))
    waiting: list[tuple[float, int]] = []  # (event time, partition)
    times: list[float] = []
    for record in records:
        if record.get("f") == "nemesis":
            waiting += [(float(record["time"]), int(p)) for p in record.get("partitions", [])]
        elif record.get("f") == "send" and record.get("type") == "ok" and waiting:
            partition, now = int(record["partition"]), float(record["time"])
            still = []
            for started, p in waiting:
                if p == partition:
                    times.append(now - started)
                else:
                    still.append((started, p))
            waiting = still
    return times


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]
