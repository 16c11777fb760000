"""The server-side assignors (uniform, range): every subscribed partition assigned exactly
once, only to subscribers, balanced, and sticky where that keeps the balance."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edplog.group.assignors import (
    MemberSpec,
    RangeAssignor,
    TopicInfo,
    UniformAssignor,
    assignors_from,
)

A, B = uuid.UUID(int=1), uuid.UUID(int=2)
TOPICS = {A: TopicInfo(A, "a", 6), B: TopicInfo(B, "b", 3)}


def _flat(result: dict) -> list[tuple[uuid.UUID, int, str]]:
    return sorted((tid, p, mid) for mid, a in result.items() for tid, ps in a.items() for p in ps)


def test_uniform_spreads_evenly_and_keeps_current_owners() -> None:
    """Three members on a 6-partition topic get two each; when a fourth joins, the first
    three keep partitions they had (at most one moves from each)."""
    u = UniformAssignor()
    first = u.assign({m: MemberSpec({A}) for m in ("m1", "m2", "m3")}, {A: TOPICS[A]})
    assert sorted(len(a[A]) for a in first.values()) == [2, 2, 2]
    specs = {m: MemberSpec({A}, first[m]) for m in first}
    specs["m4"] = MemberSpec({A})
    second = u.assign(specs, {A: TOPICS[A]})
    assert sorted(len(a.get(A, ())) for a in second.values()) == [1, 1, 2, 2]
    for m in ("m1", "m2", "m3"):
        assert second[m][A] <= first[m][A]


def test_range_gives_contiguous_ranges_per_topic() -> None:
    """Range: members sorted by id get contiguous ranges, the first ones one more."""
    r = RangeAssignor()
    out = r.assign({"m2": MemberSpec({A, B}), "m1": MemberSpec({A, B})}, TOPICS)
    assert out["m1"] == {A: {0, 1, 2}, B: {0, 1}}
    assert out["m2"] == {A: {3, 4, 5}, B: {2}}


def test_unknown_assignor_names_are_refused() -> None:
    """group.consumer.assignors only takes the two built-in names; the first is the default."""
    assert list(assignors_from(["range", "uniform"])) == ["range", "uniform"]
    with pytest.raises(ValueError, match="unknown assignor"):
        assignors_from(["org.example.Custom"])


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([f"m{i}" for i in range(6)]),
        st.sets(st.sampled_from([A, B]), min_size=1),
        min_size=1,
    ),
    st.sampled_from([UniformAssignor(), RangeAssignor()]),
)
def test_every_subscribed_partition_goes_to_exactly_one_subscriber(subs, assignor) -> None:
    """Any subscription mix: each partition of a subscribed topic once, only to a member that
    subscribes to that topic; uniform with one common subscription differs by at most one."""
    out = assignor.assign({m: MemberSpec(t) for m, t in subs.items()}, TOPICS)
    flat = _flat(out)
    wanted = {t for s in subs.values() for t in s}
    assert sorted((tid, p) for tid, p, _ in flat) == sorted(
        (tid, p) for tid in wanted for p in range(TOPICS[tid].partitions)
    )
    for tid, _, mid in flat:
        assert tid in subs[mid]
    if isinstance(assignor, UniformAssignor) and len({frozenset(s) for s in subs.values()}) == 1:
        counts = [sum(len(ps) for ps in a.values()) for a in out.values()]
        assert max(counts) - min(counts) <= 1
