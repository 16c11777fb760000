"""The follower catch-up figure of the cluster family.

A follower is stopped, the leader gets N bytes at acks=1, the follower is started again; the
rate is the bytes its log received over the time from its first new byte to its log holding as
many bytes as the leader's (compared with ``os.sendfile`` of the same bytes, the limits
family's measurement, and with ``os.write`` of the same bytes to a new file, measured in each
event just before the follower starts).

Three things keep the figure one follower's copy on comparable memory. The follower that
stayed in the ISR may still be copying when the produce ends (acks=1 does not wait for it): the
stopped follower starts only once that one holds the leader's bytes. A page-cache write is only
as fast as the memory it lands on: on a VM, memory the guest has never touched faults in page
by page through the hypervisor (a 1 GiB write to a new file measured 267-404 MB/s here, against
3-5 GB/s on memory a deleted file just freed), so a floor measured at another moment says
little. The floor's file is therefore written right before the follower starts and removed
only after it has caught up, so neither reuses the other's pages. And so that both land on
touched memory (a broker that has run a while has no other kind: its page cache fills the
machine and new pages come from reclaimed ones), a file of twice the bytes plus a margin is
written and deleted just before the floor (``PRE_TOUCH_FACTOR``); without it the floor took the
recycled pages and the follower the untouched ones, and the follower's page-cache writes ran
at first-touch speed (a sampled profile put 83 % of its append time in ``pwrite``).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from ...cluster.waiting import wait_until
from . import data, limits
from .cluster_run import BROKERS, ISR_WAIT_S, PRODUCE_CAP_S, SIZE, ClusterRun
from .model import Budget, Sample

CATCH_UP_WAIT_S = 600.0
PRE_TOUCH_FACTOR = 2  # the pre-touch file: this many times the catch-up bytes, plus a margin
PRE_TOUCH_MARGIN = 256 << 20


def log_bytes(data_dir: Path, topic: str) -> int:
    """Bytes of the .log segments of partition 0 of ``topic`` in one broker's data dir."""
    total = 0
    try:
        with os.scandir(data_dir / f"{topic}-0") as entries:
            for entry in entries:
                if entry.name.endswith(".log"):
                    try:
                        total += entry.stat().st_size
                    except FileNotFoundError:
                        pass  # a segment removed between listing and stat
    except FileNotFoundError:
        return 0
    return total


def produce_plain(bootstrap: str, topic: str, nbytes: int) -> int:
    """acks=1, no compression, until ``nbytes`` of payload are acknowledged; records sent."""
    from confluent_kafka import Producer

    failed: list[str] = []

    def report(err: Any, msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "1",
            "compression.type": "none",
            "linger.ms": 5,
            "batch.size": 1 << 20,
            "queue.buffering.max.kbytes": 1 << 20,
            "delivery.report.only.error": True,
            "on_delivery": report,
        }
    )
    pool = data.payloads(SIZE)
    count = max(1, nbytes // SIZE)
    deadline = time.monotonic() + PRODUCE_CAP_S
    for i in range(count):
        while True:
            try:
                producer.produce(topic, pool[i & 4095])
                break
            except BufferError:
                producer.poll(0.001)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"produced {i} of {count} records in time") from None
    left = producer.flush(120)
    if left or failed:
        raise RuntimeError(f"{left} undelivered, {len(failed)} failed ({failed[-1:]})")
    return count


def catch_up_once(
    run: ClusterRun, topic: str, nbytes: int, floors: list[Sample] | None = None
) -> Sample:
    """Stop a follower, give the leader ``nbytes``, start the follower, time its copy.

    With ``floors``, the same bytes' ``os.write`` to a new file, just before the follower
    starts, is appended to it (see the module docstring)."""
    run.create_topic(topic)
    state = run.state(topic)
    follower = next(b for b in state.isr if b != state.leader)
    run.cluster.terminate(follower)
    run.track()
    run.wait_isr(topic, BROKERS - 1)
    records = produce_plain(run.cluster.bootstrap, topic, nbytes)
    run.wait_isr(topic, BROKERS - 1)
    leader_dir = run.cluster.data_dir(state.leader)
    target = log_bytes(leader_dir, topic)
    others = [run.cluster.data_dir(b) for b in state.isr if b not in (state.leader, follower)]
    if not wait_until(lambda: all(log_bytes(d, topic) >= target for d in others), ISR_WAIT_S, 0.01):
        raise TimeoutError(f"the in-sync follower did not copy the leader's log in {ISR_WAIT_S} s")
    follower_dir = run.cluster.data_dir(follower)
    base = log_bytes(follower_dir, topic)
    floor_file = os.path.join(run.ctx.workdir, "cluster-catch-up-floor.bin")
    try:
        touch = Budget(
            run.ctx.budget.name,
            PRODUCE_CAP_S,
            PRE_TOUCH_FACTOR * (target - base) + PRE_TOUCH_MARGIN,
            0.0,
        )
        limits.write_new_file(run.ctx.workdir, SIZE, touch)  # written and deleted
        if floors is not None:
            budget = Budget(run.ctx.budget.name, PRODUCE_CAP_S, target - base, 0.0)
            floors.append(limits.write_new_file(run.ctx.workdir, SIZE, budget, keep=floor_file))
        sample = _copy(run, follower, follower_dir, base, target, records, topic)
    finally:
        if os.path.exists(floor_file):
            os.unlink(floor_file)
    run.delete_topic(topic)
    return sample


def _copy(
    run: ClusterRun,
    follower: int,
    follower_dir: Path,
    base: int,
    target: int,
    records: int,
    topic: str,
) -> Sample:
    """Start the stopped follower and time its copy from ``base`` to ``target`` bytes."""
    starter_error: list[BaseException] = []

    def start() -> None:
        try:
            run.cluster.start_broker(follower)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the measuring thread
            starter_error.append(exc)

    spawned = time.monotonic()
    starter = threading.Thread(target=start, name="cluster-follower-start", daemon=True)
    starter.start()
    first = caught = in_isr = 0.0
    deadline = spawned + CATCH_UP_WAIT_S
    next_zk = spawned
    while not (caught and in_isr):
        now = time.monotonic()
        if in_isr and not caught and now > in_isr + 2.0:
            caught = in_isr  # the ISR says caught up though the byte counts differ
            break
        if now > deadline or starter_error:
            raise TimeoutError(
                f"follower {follower} copied {log_bytes(follower_dir, topic) - base} of "
                f"{target - base} bytes by the deadline ({starter_error[:1]})"
            )
        size = log_bytes(follower_dir, topic)
        if not first and size > base:
            first = now
        if not caught and size >= target:
            caught = now
        if not in_isr and now >= next_zk:
            next_zk = now + 0.02
            if follower in run.state(topic).isr:
                in_isr = now
        time.sleep(0.002)
    starter.join(ISR_WAIT_S)
    run.track()
    copied = target - base
    seconds = max(caught - first, 1e-6)
    sample = Sample(
        records,
        copied,
        seconds,
        latency_ms={
            "catch-up": seconds * 1000,
            "start_to_first_byte": (first - spawned) * 1000,
            "start_to_isr": (in_isr - spawned) * 1000,
        },
    )
    return sample
