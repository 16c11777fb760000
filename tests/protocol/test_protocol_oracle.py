"""Every supported (api, version, direction) against kafka-python's codec as an oracle:
byte-equal encodings and our decode of the oracle's bytes."""

from __future__ import annotations

import proto_oracle as oracle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proto_values import (
    all_cases,
    drop_default_tags,
    expected,
    fields_of,
    ours_decode,
    ours_encode,
    plain,
    populated,
    strategy,
)

from edplog.protocol import registry

# kafka-python has no classes for some APIs (68, 69): test_protocol_kio.py covers those.
CASES = [c for c in all_cases() if (c[0], c[2]) in oracle.CLASSES]


def check_against_oracle(api_key: int, version: int, kind: str, value: dict) -> None:
    fields = fields_of(api_key, kind)
    flexible = registry.is_flexible(api_key, version)
    value = drop_default_tags(fields, version, value)
    ours = ours_encode(api_key, version, kind, value)
    theirs = oracle.encode_body(api_key, kind, version, value)
    assert ours == theirs
    decoded = ours_decode(api_key, version, kind, theirs)
    assert plain(decoded) == expected(fields, version, flexible, value)
    if api_key == 18 and kind == "response" and value.get("error_code"):
        return  # the oracle reads an ApiVersions error response as v0, like Kafka clients
    # the oracle reads our bytes back to the same values
    back = oracle.decode_body(api_key, kind, version, ours)
    for name, v in value.items():
        if name in back and not isinstance(v, list | dict):
            assert back[name] == v, name


@pytest.mark.parametrize(("api_key", "version", "kind"), CASES)
def test_populated_message_matches_oracle(api_key: int, version: int, kind: str) -> None:
    value = populated(fields_of(api_key, kind), version)
    check_against_oracle(api_key, version, kind, value)


@pytest.mark.parametrize(("api_key", "version", "kind"), CASES)
def test_empty_message_matches_oracle(api_key: int, version: int, kind: str) -> None:
    check_against_oracle(api_key, version, kind, {})


HOT = [c for c in CASES if c[0] in (0, 1, 8, 9, 10, 11, 12, 13, 14, 15, 16, 42)]


@st.composite
def _case_and_value(draw: st.DrawFn) -> tuple[int, int, str, dict]:
    api_key, version, kind = draw(st.sampled_from(HOT))
    value = draw(strategy(fields_of(api_key, kind), version))
    return api_key, version, kind, value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_case_and_value())
def test_generated_group_produce_fetch_messages_match_oracle(
    case: tuple[int, int, str, dict],
) -> None:
    check_against_oracle(*case)
