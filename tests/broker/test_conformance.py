"""docs/protocol.md's conformance table is generated from the broker and cannot drift."""

from __future__ import annotations

from pathlib import Path

from edplog.broker import conformance
from edplog.protocol.registry import API_NAMES, SUPPORTED

PAGE = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_the_page_holds_the_current_table() -> None:
    """Tried: regenerating the table from the registry. Must hold: docs/protocol.md already
    says exactly that (run ``python -m edplog.broker.conformance --write docs/protocol.md``)."""
    page = PAGE.read_text()
    assert conformance.render(page) == page


def test_every_advertised_api_has_a_handler_and_is_a_kafka_api() -> None:
    """Tried: every API key ApiVersions advertises. Must hold: the broker has a handler for
    it, Kafka defines it under the same name, and we advertise no version above Kafka's."""
    kafka = {api.key: api for api in conformance.KAFKA_APIS}
    assert set(conformance.served()) == set(SUPPORTED)
    for key, (low, high) in SUPPORTED.items():
        api = kafka[key]
        assert api.name == API_NAMES[key]
        assert api.high is not None and high <= api.high, (api.name, high, api.high)
        assert low <= (api.low or 0)


def test_notes_are_given_for_served_apis_only() -> None:
    """A served API states what it leaves out (maybe nothing); an unserved one cannot."""
    assert set(conformance.SERVED_NOTES) == set(conformance.served())
    assert not set(conformance.UNSERVED_NOTES) & set(conformance.served())
    keys = [api.key for api in conformance.KAFKA_APIS]
    assert keys == sorted(set(keys))


def test_check_reports_a_stale_page(tmp_path: Path, capsys) -> None:
    """Tried: --check on a copy whose table lost a row, then --write. Must hold: --check
    exits 1 naming the file, --write repairs it, and --check then passes."""
    stale = tmp_path / "protocol.md"
    kept = [line for line in PAGE.read_text().splitlines() if "| 3 |" not in line]
    stale.write_text("\n".join(kept) + "\n")
    assert conformance.main([str(stale), "--check"]) == 1
    assert str(stale) in capsys.readouterr().out
    assert conformance.main([str(stale), "--write"]) == 0
    assert conformance.main([str(stale), "--check"]) == 0
    assert "| 3 | Metadata |" in stale.read_text()
