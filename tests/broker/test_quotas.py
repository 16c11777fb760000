"""The quota module on its own: Kafka's precedence of the eight user/client-id entities,
the shared measurement of a matched entity, the sliding-window rate and throttle time, and
quotas.json with its previous-version fallback."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from edplog.broker.quotas import (
    CLIENT_ID,
    FETCH,
    PRODUCE,
    USER,
    ClientQuotas,
    QuotaManager,
    Rate,
)
from edplog.errors import InvalidRequestError

# Kafka's order, most specific first (docs: "Quotas", KIP-55).
ORDER = [
    ((CLIENT_ID, "c"), (USER, "u")),
    ((CLIENT_ID, None), (USER, "u")),
    ((USER, "u"),),
    ((CLIENT_ID, "c"), (USER, None)),
    ((CLIENT_ID, None), (USER, None)),
    ((USER, None),),
    ((CLIENT_ID, "c"),),
    ((CLIENT_ID, None),),
]


def test_the_most_specific_of_the_eight_entities_wins(tmp_path) -> None:
    """With all eight entities set (entity i to quota i+1), user u with client id c gets the
    first; removing entities one by one from the front walks down Kafka's order; each quota
    type resolves on its own."""
    quotas = ClientQuotas(str(tmp_path))
    quotas.values = {e: {PRODUCE: float(i + 1)} for i, e in enumerate(ORDER)}
    quotas.values[ORDER[-1]][FETCH] = 99.0
    manager = QuotaManager(quotas)
    for i in range(len(ORDER)):
        quotas.version += 1
        assert manager.quota_for(PRODUCE, "u", "c")[2] == i + 1
        assert manager.quota_for(FETCH, "u", "c")[2] == 99.0
        del quotas.values[ORDER[i]][PRODUCE]
    quotas.version += 1
    assert manager.quota_for(PRODUCE, "u", "c")[2] == math.inf


def test_matched_entity_decides_who_shares_a_measurement(tmp_path) -> None:
    """A quota on client-id=c is one measurement for every user with that client id; a quota
    on the default client id measures each client id apart; a user quota ignores the
    client id."""
    quotas = ClientQuotas(str(tmp_path))
    quotas.values = {((CLIENT_ID, "c"),): {PRODUCE: 1.0}, ((CLIENT_ID, None),): {FETCH: 1.0}}
    m = QuotaManager(quotas)
    assert m.quota_for(PRODUCE, "u1", "c")[:2] == m.quota_for(PRODUCE, "u2", "c")[:2]
    assert m.quota_for(FETCH, "u", "a")[:2] != m.quota_for(FETCH, "u", "b")[:2]
    quotas.values = {((USER, "u"),): {PRODUCE: 1.0}}
    quotas.version += 1
    assert m.quota_for(PRODUCE, "u", "a")[:2] == m.quota_for(PRODUCE, "u", "b")[:2] == ("u", None)


def test_rate_pads_a_young_window_and_forgets_old_samples() -> None:
    """11 samples of 1 s: 10 units recorded at once read as 1/s (the span is padded to 10
    windows); 11 s later they have left the window and the rate is 0."""
    rate = Rate(11, 1000, now_ms=0.0)
    rate.record(10.0, 0.0)
    assert rate.measure(0.0) == pytest.approx(1.0)
    rate.record(0.0, 5500.0)
    assert rate.measure(5500.0) == pytest.approx(10 / 10.5)
    assert rate.measure(11_000.0) == 0.0


def test_throttle_time_is_kafkas_formula(tmp_path) -> None:
    """Over a quota of 100 B/s, 2,000 bytes at once (rate 200/s over a 10 s span) throttle
    for (200 - 100) / 100 x 10 s = 10 s; under the quota there is no throttle."""
    quotas = ClientQuotas(str(tmp_path))
    quotas.values = {((CLIENT_ID, "c"),): {PRODUCE: 100.0}}
    m = QuotaManager(quotas, window_num=11, window_size_s=1)
    assert m.record(PRODUCE, "u", "c", 500.0) == 0
    ms = m.record(PRODUCE, "u", "c", 1500.0)
    assert 9_900 <= ms <= 10_000
    assert m.record(PRODUCE, "u", "other", 10_000.0) == 0  # not covered by any quota


def test_quotas_file_falls_back_to_the_previous_version(tmp_path) -> None:
    """Two alterations leave quotas.json and quotas.json.prev; a damaged quotas.json is read
    from .prev (the first alteration), and both damaged refuses to start."""
    quotas = ClientQuotas(str(tmp_path))

    async def alter() -> None:
        await quotas.alter({((USER, "a"),): {PRODUCE: 10.0}})
        await quotas.alter({((USER, "a"),): {PRODUCE: 20.0}})

    asyncio.run(alter())
    again = ClientQuotas(str(tmp_path))
    again.load()
    assert again.values == {((USER, "a"),): {PRODUCE: 20.0}}
    (tmp_path / "quotas.json").write_text('{"quotas": [')
    fallback = ClientQuotas(str(tmp_path))
    fallback.load()
    assert fallback.values == {((USER, "a"),): {PRODUCE: 10.0}}
    (tmp_path / "quotas.json.prev").write_text("not json")
    with pytest.raises(ValueError):
        ClientQuotas(str(tmp_path)).load()
    (tmp_path / "quotas.json").write_text(
        json.dumps({"quotas": [{"entity": [["user", "a"]], "values": {"bad_key": 1}}]})
    )
    with pytest.raises(InvalidRequestError, match="bad_key"):
        ClientQuotas(str(tmp_path)).load()
