"""The consumer-protocol APIs (ConsumerGroupHeartbeat 68, ConsumerGroupDescribe 69),
ListGroups v5 and the cluster administration APIs (ElectLeaders 43,
AlterPartitionReassignments 45, ListPartitionReassignments 46) against kio, a codec generated
from Kafka's own schemas: byte-equal encodings, our decode of kio's bytes, and kio's decode of
ours."""

from __future__ import annotations

import proto_kio as kio
import proto_oracle as oracle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proto_values import (
    all_cases,
    expected,
    fields_of,
    ours_decode,
    ours_encode,
    populated,
    strategy,
)

from edplog.protocol import registry

KIO_KEYS = (16, 43, 45, 46, 68, 69)
KNOWN_CODES = sorted(int(c.value) for c in kio.ErrorCode)
CASES = [c for c in all_cases() if c[0] in KIO_KEYS and (c[0] != 16 or c[1] == 5)]


def _known_codes(value: object) -> object:
    """kio only holds error codes Kafka defines: map generated ones onto those."""
    if isinstance(value, list):
        return [_known_codes(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _known_codes(v) for k, v in value.items()}
    if isinstance(out.get("error_code"), int):
        out["error_code"] = KNOWN_CODES[out["error_code"] % len(KNOWN_CODES)]
    return out


def check_against_kio(api_key: int, version: int, kind: str, value: dict) -> None:
    fields = fields_of(api_key, kind)
    flexible = registry.is_flexible(api_key, version)
    # Mapped before the defaults are filled in: a field the version lacks keeps its default
    # (an absent error_code decodes as 0, which the mapping would change).
    value = _known_codes(value)  # type: ignore[assignment]
    full = expected(fields, version, flexible, value)
    ours = ours_encode(api_key, version, kind, full)
    theirs = kio.encode_body(api_key, kind, version, full)
    assert ours == theirs
    assert ours_decode(api_key, version, kind, theirs) == full
    cls = kio.message_class(api_key, kind, version)
    assert kio.decode_body(api_key, kind, version, ours) == kio.to_dict(kio.to_entity(cls, full))


def test_every_advertised_case_has_an_independent_codec() -> None:
    """Every (api, version, direction) we serve is checked by kafka-python or by kio."""
    kio_cases = set(CASES)
    for api_key, version, kind in all_cases():
        covered = (api_key, kind) in oracle.CLASSES or (api_key, version, kind) in kio_cases
        assert covered, (api_key, version, kind)


@pytest.mark.parametrize(("api_key", "version", "kind"), CASES)
def test_populated_message_matches_kio(api_key: int, version: int, kind: str) -> None:
    check_against_kio(api_key, version, kind, populated(fields_of(api_key, kind), version))


@pytest.mark.parametrize(("api_key", "version", "kind"), CASES)
def test_default_message_matches_kio(api_key: int, version: int, kind: str) -> None:
    check_against_kio(api_key, version, kind, {})


def test_heartbeat_response_null_and_present_assignment() -> None:
    """The nullable Assignment struct: null is one 0xff byte, present is 1 then the struct."""
    for assignment in (None, {"topic_partitions": []}):
        value = {"error_code": 0, "member_epoch": 3, "assignment": assignment}
        check_against_kio(68, 1, "response", value)


@st.composite
def _case_and_value(draw: st.DrawFn) -> tuple[int, int, str, dict]:
    api_key, version, kind = draw(st.sampled_from(CASES))
    return api_key, version, kind, draw(strategy(fields_of(api_key, kind), version))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_case_and_value())
def test_generated_consumer_protocol_messages_match_kio(case: tuple[int, int, str, dict]) -> None:
    check_against_kio(*case)
