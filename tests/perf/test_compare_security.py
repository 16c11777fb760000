"""The ``security`` family of ``edplog perf compare`` in its tiny mode: one real broker
process with PLAINTEXT, SSL and SASL_PLAINTEXT (SCRAM-SHA-512) listeners, confluent-kafka and
edplog's client over real TLS.

Only the shape and sanity of the results are checked (every figure measured or skipped with
its reason, counts that add up, the report naming each goal); timings never decide pass or
fail, because the machine is shared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edplog.cli import main
from edplog.perf.compare import security
from edplog.perf.compare.runner import REPORT, RESULTS

pytest.importorskip("confluent_kafka")


@pytest.fixture(scope="module")
def tiny_security_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compare-security")
    argv = ["perf", "compare", "--tiny", "--runs", "1", "--only", "security", "--out", str(out)]
    assert main([*argv, "--data-dir", str(out / "data"), "--no-progress"]) == 0
    return out


def _figures(out: Path) -> dict[str, dict[str, Any]]:
    results = json.loads((out / RESULTS).read_text())
    return {f["spec"]["key"]: f for f in results["figures"]}


@pytest.mark.timeout(300)
def test_tls_and_plaintext_move_the_same_work(tiny_security_run: Path) -> None:
    """Tried: produce and raw Fetch over PLAINTEXT and over SSL of one broker, and produce to
    a second broker with ACLs on. Must hold: each figure has its sample, of 1 KiB records;
    the produce figures moved the same record count (the ratios compare equal work) and the
    ACL broker let its principal write (the records were acknowledged); both fetch sides
    read bytes."""
    figures = _figures(tiny_security_run)
    for key in (
        "security.produce.plaintext",
        "security.produce.tls",
        "security.produce.acls",
        "security.fetch.plaintext",
        "security.fetch.tls",
    ):
        assert figures[key]["skipped"] is None, (key, figures[key]["skipped"])
        assert figures[key]["spec"]["record_size"] == security.SIZE
        assert figures[key]["samples"][0]["bytes"] > 0, key
    plain = figures["security.produce.plaintext"]["samples"][0]
    tls = figures["security.produce.tls"]["samples"][0]
    acls = figures["security.produce.acls"]["samples"][0]
    assert plain["records"] == tls["records"] == acls["records"] > 0


def test_scram_logins_are_counted_and_ktls_says_why(tiny_security_run: Path) -> None:
    """Tried: SCRAM-SHA-512 logins on new connections, and the kernel TLS probe. Must hold:
    logins were made (each a full exchange the broker accepted); the kernel TLS figure is
    measured or skipped with a reason that names what is missing."""
    figures = _figures(tiny_security_run)
    scram = figures["security.scram_logins"]
    assert scram["skipped"] is None, scram["skipped"]
    assert scram["samples"][0]["records"] >= 1
    ktls = figures["security.fetch.ktls"]
    missing = security.ktls_missing()
    if missing:
        assert ktls["skipped"] and missing in ktls["skipped"]
    text = (tiny_security_run / REPORT).read_text()
    goals = ("produce over TLS >= 0.7x", "fetch over TLS (reads", "kernel TLS", "ACLs on")
    for goal in goals:
        assert goal in text
