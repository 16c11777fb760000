"""Leader failover figures of the cluster family: SIGKILL and SIGTERM of a partition's leader
under a continuous idempotent acks=all producer.

The SIGKILL figure is the time from the signal to the first acknowledgement of a record sent
after the leader was dead (only a live leader can have acknowledged it); its bound is the
brokers' ZooKeeper session timeout, when the controller learns of the death. The SIGTERM
figure (a controlled shutdown moves leadership first) is the longest gap between
acknowledgements from the signal on: the stall the producer sees.
"""

from __future__ import annotations

import struct
import threading
import time
from typing import Any

from ...cluster.waiting import wait_until
from . import data
from .cluster_run import BROKERS, SESSION_TIMEOUT_MS, SIZE, ClusterRun
from .model import CpuProbe, Figure, Sample, Spec

# The continuous sender: records per second (1 KiB each).
SEND_RATE = 500
FAILOVER_WAIT_S = SESSION_TIMEOUT_MS / 1000 + 30


class Sender(threading.Thread):
    """An idempotent acks=all producer sending ``SEND_RATE`` records/s until stopped.

    Each value starts with its send time (``time.monotonic_ns``); every acknowledgement is kept
    as (ack time, send time) in seconds. A fatal producer error (possible around failovers)
    is recorded and the sender carries on with a fresh producer.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(name="cluster-failover-sender", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.acks: list[tuple[float, float]] = []
        self.errors: list[tuple[float, str]] = []
        self.fatal: list[str] = []
        self.halt = threading.Event()
        self._stamp = struct.Struct(">q")

    def _report(self, err: Any, msg: Any) -> None:
        now = time.monotonic()
        if err is None:
            self.acks.append((now, self._stamp.unpack_from(msg.value())[0] / 1e9))
        else:
            self.errors.append((now, str(err)))

    def _producer(self) -> Any:
        from confluent_kafka import Producer

        def on_error(err: Any) -> None:
            if err.fatal():
                self.fatal.append(str(err))

        return Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 2,
                "message.timeout.ms": int(FAILOVER_WAIT_S * 1000) * 2,
                "retry.backoff.ms": 20,
                "on_delivery": self._report,
                "error_cb": on_error,
                # Refused connections to the stopped leader are expected: errors are counted
                # from the delivery reports instead of printed.
                "log_level": 2,
            }
        )

    def run(self) -> None:
        pad = data.payloads(SIZE)[0][8:]
        pack = self._stamp.pack
        producer = self._producer()
        interval = 1.0 / SEND_RATE
        due = time.monotonic()
        fatal_seen = 0
        while not self.halt.is_set():
            now = time.monotonic()
            if now >= due:
                try:
                    producer.produce(self.topic, pack(time.monotonic_ns()) + pad)
                except BufferError:
                    pass  # the queue is full during a failover: the next tick tries again
                due = max(due + interval, now - 1.0)
            producer.poll(max(0.0, min(0.002, due - time.monotonic())))
            if len(self.fatal) > fatal_seen:
                fatal_seen = len(self.fatal)
                producer.flush(5)
                producer = self._producer()
        producer.flush(30)

    def acks_after(self, sent_at: float, start: int = 0) -> tuple[float, float] | None:
        """The first acknowledgement (from index ``start`` on) of a record sent at or after
        ``sent_at``."""
        for ack, sent in self.acks[start:]:
            if sent >= sent_at:
                return ack, sent
        return None


def failover(run: ClusterRun, topic: str, spec: Spec, events: int, how: str) -> None:
    """``events`` leader stops (``how``: kill or term), each followed by a restart and a
    full ISR; one sample per event."""
    ctx = run.ctx
    figure = Figure(spec)
    ctx.figures.append(figure)
    sender = Sender(run.cluster.bootstrap, topic)
    sender.start()
    try:
        # The producer is connected and acknowledged before any fault.
        if not wait_until(lambda: bool(sender.acks), 60, 0.05):
            raise TimeoutError(f"no acknowledgement in 60 s ({sender.errors[-1:]})")
        for i in range(events):
            ctx.progress.show(f"cluster {spec.title}: event {i + 1}/{events}")
            leader = run.wait_isr(topic, BROKERS).leader
            probe = CpuProbe(ctx.server_pids)
            probe.start()
            errors_before = len(sender.errors)
            acks_before = len(sender.acks)
            signalled = time.monotonic()
            if how == "kill":
                run.cluster.kill(leader)
            else:
                run.cluster.terminate(leader)
            gone = time.monotonic()
            limit = gone + FAILOVER_WAIT_S
            elected = 0.0  # when ZooKeeper first names another leader
            first = sender.acks_after(gone, acks_before)
            while first is None or not elected:
                now = time.monotonic()
                if now > limit:
                    raise TimeoutError(
                        f"no acknowledgement (or no new leader) within {FAILOVER_WAIT_S:.0f} s "
                        f"after stopping leader {leader} ({sender.errors[-1:]})"
                    )
                if not elected and run.state(topic).leader not in (leader, -1):
                    elected = now
                time.sleep(0.01)
                if first is None:
                    first = sender.acks_after(gone, acks_before)
            end = first[0] + 0.5
            time.sleep(max(0.0, end - time.monotonic()))
            acks = sorted(a for a, _ in list(sender.acks) if signalled < a <= end)
            marks = [signalled, *acks]
            stall = max(b - a for a, b in zip(marks, marks[1:], strict=False))
            errors = len(sender.errors) - errors_before
            sample = Sample(
                len(acks),
                len(acks) * SIZE,
                end - signalled,
                latency_ms={
                    "failover": (first[0] - signalled) * 1000,
                    "stall": stall * 1000,
                    "errors": float(errors),
                    "exit": (gone - signalled) * 1000,
                    "elected": (elected - signalled) * 1000,
                },
            )
            probe.stop(sample)
            figure.samples.append(sample)
            lat = sample.latency_ms or {}
            ctx.progress.show(
                f"cluster {spec.title}: event {i + 1}/{events} leader {leader}: first ack "
                f"{lat['failover']:.0f} ms (elected {lat['elected']:.0f} ms), longest stall "
                f"{lat['stall']:.0f} ms, {errors} errors"
            )
            run.cluster.start_broker(leader)
            run.track()
            run.wait_isr(topic, BROKERS, leader)
        if sender.fatal:
            ctx.notes.append(f"{spec.title}: fatal producer errors {sender.fatal[:3]}")
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - recorded in the report, never hidden
        figure.samples.clear()
        figure.skipped = f"failed: {type(exc).__name__}: {exc}"
        ctx.progress.say(f"  cluster {spec.title}: {figure.skipped}")
    finally:
        sender.halt.set()
        sender.join(60)
