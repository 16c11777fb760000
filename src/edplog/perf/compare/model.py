"""What a comparison run measures and how each figure is repeated, summarised and named.

A *figure* is one workload at one record size under one batching, durability and client
setting. Every figure is run ``runs`` times after one shorter warm-up, and summarised as the
median with the min-max spread: this VM's first touch of memory is bimodal (perf.md, quirk 1),
so a single run or a mean would mislead. Each run also records how busy the *other* tenants of
the machine were, because the box is shared and a noisy run should be visibly noisy.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

RECORD_SIZES = (100, 1024)


@dataclass(frozen=True)
class Budget:
    """Bounds for one timed run: whichever of time or volume is reached first ends it."""

    name: str
    seconds: float  # wall-clock cap of one timed run
    max_bytes: int  # payload volume cap of one timed run
    latency_seconds: float  # length of a paced latency run

    def records(self, record_size: int) -> int:
        """The record-count cap that matches the byte cap at this record size."""
        return max(1000, self.max_bytes // record_size)


BUDGETS = {
    "tiny": Budget("tiny", 0.05, 2 << 20, 0.3),
    "quick": Budget("quick", 0.4, 64 << 20, 1.5),
    "full": Budget("full", 2.5, 1 << 30, 10.0),
}


@dataclass
class Sample:
    """One timed run: how much moved, how long it took, and how busy the machine was."""

    records: int
    bytes: int
    seconds: float
    foreign_jiffies: float = 0.0  # CPU time other processes used during the run
    total_jiffies: float = 0.0  # CPU time all cores had during the run
    latency_ms: dict[str, float] | None = None

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def bytes_per_s(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Spec:
    """The name of a figure: every setting a reader needs to reproduce it."""

    key: str  # stable identifier used by the goals, e.g. "redis.xadd.aof-off"
    family: str  # limits, embedded, broker, redis, nats
    title: str  # what runs, e.g. "XADD"
    record_size: int
    batching: str
    durability: str
    client: str

    @property
    def id(self) -> str:
        return f"{self.key}@{self.record_size}"


@dataclass
class Figure:
    """A spec with its samples, or the reason it has none."""

    spec: Spec
    samples: list[Sample] = field(default_factory=list)
    skipped: str | None = None

    def _stat(self, values: Sequence[float]) -> tuple[float, float, float]:
        return statistics.median(values), min(values), max(values)

    @property
    def ok(self) -> bool:
        return bool(self.samples) and self.skipped is None

    def records_per_s(self) -> tuple[float, float, float]:
        return self._stat([s.records_per_s for s in self.samples])

    def bytes_per_s(self) -> tuple[float, float, float]:
        return self._stat([s.bytes_per_s for s in self.samples])

    def latency_ms(self, name: str) -> tuple[float, float, float] | None:
        values = [s.latency_ms[name] for s in self.samples if s.latency_ms and name in s.latency_ms]
        return self._stat(values) if values else None

    def foreign_cpu(self) -> float | None:
        """Share of the machine other processes used over all runs (ticks are 10 ms, so
        per-run shares of short runs are too coarse to report one by one)."""
        total = sum(s.total_jiffies for s in self.samples)
        if total <= 0:
            return None
        return max(0.0, min(1.0, sum(s.foreign_jiffies for s in self.samples) / total))

    def to_json(self) -> dict[str, object]:
        return {
            "spec": asdict(self.spec),
            "skipped": self.skipped,
            "samples": [asdict(s) for s in self.samples],
        }


def _proc_stat_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from the first line of /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            parts = [float(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0.0)
    return sum(parts) - idle, sum(parts)


def _pid_jiffies(pid: int) -> float:
    """utime + stime of one process and its reaped children, in jiffies (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(float(x) for x in fields[11:15])


class CpuProbe:
    """Measures the CPU used by processes other than ours and the servers we started.

    The result is the fraction of the whole machine (all cores) that *foreign* work used while
    a run was timed; perf.md reports runs above a few per cent as noisy.
    """

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = [os.getpid(), *pids]

    def start(self) -> None:
        self._busy0, self._total0 = _proc_stat_busy()
        self._ours0 = sum(_pid_jiffies(p) for p in self.pids)

    def stop(self, sample: Sample) -> None:
        """Store the foreign and total CPU ticks of the run in the sample."""
        busy1, total1 = _proc_stat_busy()
        ours1 = sum(_pid_jiffies(p) for p in self.pids)
        sample.total_jiffies = total1 - self._total0
        sample.foreign_jiffies = (busy1 - self._busy0) - (ours1 - self._ours0)


class Progress:
    """One live line on stderr (a rewritten line on a terminal, plain lines otherwise)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self._width = 0

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        line = f"[{time.monotonic() - self.started:6.1f}s] {text}"
        if self.tty:
            pad = max(0, self._width - len(line))
            sys.stderr.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def say(self, text: str) -> None:
        """A line that stays (a skip reason, a family starting)."""
        if not self.enabled:
            return
        if self.tty and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            self._width = 0
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.tty and self._width:
            sys.stderr.write("\n")
            self._width = 0


def human_rate(value: float, unit: str = "") -> str:
    """1234567 -> '1.23 M' (decimal prefixes, as perf.md uses MB = 10^6 bytes)."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()


class Context:
    """Shared by all families of one run: the budget, the figures, progress and CPU probing."""

    def __init__(
        self,
        budget: Budget,
        runs: int,
        workdir: str,
        progress: Progress,
        record_sizes: Sequence[int] = RECORD_SIZES,
    ) -> None:
        self.budget = budget
        self.record_sizes = tuple(record_sizes)
        self.runs = runs
        self.workdir = workdir
        self.progress = progress
        self.figures: list[Figure] = []
        self.notes: list[str] = []
        self.server_pids: list[int] = []

    def skip(self, spec: Spec, reason: str) -> Figure:
        figure = Figure(spec, skipped=reason)
        self.figures.append(figure)
        return figure

    def measure(self, spec: Spec, run: Callable[[Budget], Sample], warmup: bool = True) -> Figure:
        """Run one figure: a warm-up at a quarter of the budget, then ``runs`` timed runs.

        A run that raises turns the whole figure into a skip carrying the error, so one broken
        workload never hides the others.
        """
        figure = Figure(spec)
        self.figures.append(figure)
        label = f"{spec.family} {spec.title} {spec.record_size} B [{spec.durability}]"
        try:
            if warmup:
                self.progress.show(f"{label}: warm-up")
                small = Budget(
                    self.budget.name,
                    self.budget.seconds / 4,
                    self.budget.max_bytes // 4,
                    self.budget.latency_seconds / 4,
                )
                run(small)
            for i in range(self.runs):
                self.progress.show(f"{label}: run {i + 1}/{self.runs}")
                probe = CpuProbe(self.server_pids)
                probe.start()
                sample = run(self.budget)
                probe.stop(sample)
                figure.samples.append(sample)
                self.progress.show(
                    f"{label}: run {i + 1}/{self.runs} {human_rate(sample.records_per_s)}rec/s "
                    f"{human_rate(sample.bytes_per_s, 'B/s')}"
                )
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded in the report, never hidden
            figure.samples.clear()
            figure.skipped = f"failed: {type(exc).__name__}: {exc}"
            self.progress.say(f"  {label}: {figure.skipped}")
        return figure

    def find(self, spec_id: str) -> Figure | None:
        for figure in self.figures:
            if figure.spec.id == spec_id and figure.ok:
                return figure
        return None
