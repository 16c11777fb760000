"""Server-side partition assignors of the consumer protocol (KIP-848): ``uniform`` and ``range``.

In the consumer protocol the coordinator, not a group leader, computes each member's target
assignment. An assignor sees every member's subscribed topics and its current target, and the
topics' partition counts, and returns the new target per member. Both assignors here are
deterministic (members and topics are visited in sorted order), so the same input always gives
the same target, which keeps reassignment after a restart or a lost response stable.

- ``uniform`` spreads every subscribed partition as evenly as possible over the members that
  subscribe to its topic, keeping partitions where they are when that does not unbalance the
  group (stickiness: fewer revocations while members come and go).
- ``range`` gives each member of a topic a contiguous range of its partitions, topic by topic
  (members sorted by id), so members subscribed to co-partitioned topics get the same partition
  numbers of each.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

#: topic id -> partition numbers.
Assignment = dict[uuid.UUID, set[int]]


@dataclass(frozen=True)
class TopicInfo:
    """A topic as the assignor sees it."""

    topic_id: uuid.UUID
    name: str
    partitions: int


@dataclass
class MemberSpec:
    """What the assignor knows of a member: the topic ids it subscribes to, its current target."""

    subscribed: set[uuid.UUID]
    current: Assignment = field(default_factory=dict)


class Assignor(Protocol):
    name: str

    def assign(
        self, members: Mapping[str, MemberSpec], topics: Mapping[uuid.UUID, TopicInfo]
    ) -> dict[str, Assignment]: ...


def _empty(members: Mapping[str, MemberSpec]) -> dict[str, Assignment]:
    return {member_id: {} for member_id in members}


class UniformAssignor:
    """Even spread per topic's subscribers, sticky to the current target (module docstring)."""

    name = "uniform"

    def assign(
        self, members: Mapping[str, MemberSpec], topics: Mapping[uuid.UUID, TopicInfo]
    ) -> dict[str, Assignment]:
        result = _empty(members)
        if not members:
            return result
        ordered = sorted(topics.values(), key=lambda t: t.name)
        partitions = [
            (t.topic_id, p)
            for t in ordered
            for p in range(t.partitions)
            if any(t.topic_id in m.subscribed for m in members.values())
        ]
        # Every member's fair share of what it can hold; the first `extra` may hold one more.
        eligible = {
            mid: sum(1 for tid, _ in partitions if tid in spec.subscribed)
            for mid, spec in members.items()
        }
        total = len(partitions)
        quota = {mid: min(eligible[mid], total // len(members)) for mid in members}
        extra = total - sum(quota.values())
        counts = dict.fromkeys(members, 0)
        owner: dict[tuple[uuid.UUID, int], str] = {}
        # 1. keep current targets up to the quota; 2. then up to quota + 1 while spares last.
        for bonus in (0, 1):
            for mid in sorted(members):
                spec = members[mid]
                for tid in sorted(spec.current, key=str):
                    if tid not in spec.subscribed or tid not in topics:
                        continue
                    for p in sorted(spec.current[tid]):
                        tp = (tid, p)
                        if tp in owner or p >= topics[tid].partitions:
                            continue
                        if counts[mid] >= quota[mid] + bonus or (bonus and extra <= 0):
                            break
                        owner[tp] = mid
                        counts[mid] += 1
                        if bonus:
                            extra -= 1
        # 3. the rest to the least loaded member that subscribes to the topic.
        for tp in partitions:
            if tp in owner:
                continue
            candidates = [mid for mid, spec in members.items() if tp[0] in spec.subscribed]
            mid = min(candidates, key=lambda m: (counts[m], m))
            owner[tp] = mid
            counts[mid] += 1
        for (tid, p), mid in owner.items():
            result[mid].setdefault(tid, set()).add(p)
        return result


class RangeAssignor:
    """Contiguous partition ranges per topic over its subscribers sorted by member id."""

    name = "range"

    def assign(
        self, members: Mapping[str, MemberSpec], topics: Mapping[uuid.UUID, TopicInfo]
    ) -> dict[str, Assignment]:
        result = _empty(members)
        for topic in sorted(topics.values(), key=lambda t: t.name):
            subscribers = sorted(
                m for m, spec in members.items() if topic.topic_id in spec.subscribed
            )
            if not subscribers:
                continue
            share, extra = divmod(topic.partitions, len(subscribers))
            start = 0
            for i, mid in enumerate(subscribers):
                count = share + (1 if i < extra else 0)
                if count:
                    result[mid][topic.topic_id] = set(range(start, start + count))
                start += count
        return result


ASSIGNORS: dict[str, type[UniformAssignor] | type[RangeAssignor]] = {
    UniformAssignor.name: UniformAssignor,
    RangeAssignor.name: RangeAssignor,
}


def assignors_from(names: list[str]) -> dict[str, Assignor]:
    """The assignors named by ``group.consumer.assignors`` (in order: the first is the
    default); an unknown name is refused with ValueError."""
    if not names:
        raise ValueError("group.consumer.assignors names no assignor")
    out: dict[str, Assignor] = {}
    for name in names:
        cls = ASSIGNORS.get(name.strip())
        if cls is None:
            # Kafka also accepts class names; only the two built-in short names exist here.
            raise ValueError(
                f"group.consumer.assignors: unknown assignor {name!r} (known: uniform, range)"
            )
        out[cls.name] = cls()
    return out


__all__ = [
    "ASSIGNORS",
    "Assignment",
    "Assignor",
    "MemberSpec",
    "RangeAssignor",
    "TopicInfo",
    "UniformAssignor",
    "assignors_from",
]
