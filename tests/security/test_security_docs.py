"""docs/security.md runs as written: its openssl commands make the certificates, its Python
example starts a broker with an mTLS listener and reads over it with them, and its ACL
example grants, lists and deletes."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from docs_examples import ROOT, example, run_example


def openssl_commands() -> str:
    text = (ROOT / "docs" / "security.md").read_text()
    return next(b for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S) if "openssl req" in b)


def test_openssl_commands_and_the_mtls_example_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edplog.broker")
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", openssl_commands()],
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    for name in ("ca.pem", "broker.pem", "alice.crt", "alice.key", "broker.p12"):
        assert (tmp_path / name).stat().st_size > 0
    monkeypatch.chdir(tmp_path)
    run_example(example("security.md", "BackgroundBroker"), "docs/security.md")
    # The log line the page shows, with the principal its mapping rule makes.
    assert "principal User:alice (subject CN=alice,OU=eng,O=Acme,C=GB)" in caplog.text


def test_the_acl_example_grants_lists_and_deletes() -> None:
    """The ACL example: a super user creates a prefixed ALLOW and a literal DENY, lists both
    and deletes both (its own assertions)."""
    run_example(example("security.md", "create_acls"), "docs/security.md")


def test_the_oauthbearer_example_logs_in_with_a_signed_token() -> None:
    """The OAUTHBEARER example: a broker validating against a JWKS file, a producer whose
    token callback signs a token, one record delivered (its own assertion)."""
    run_example(example("security.md", "oauth_cb"), "docs/security.md")


def test_the_secrets_commands_and_example_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "Secrets in configuration" section: its edplog secrets commands make a key and
    encrypt alice's password from a file; its Python example starts a broker whose JAAS
    configuration holds that ENC value and a ${file:...} reference, logs both users in and
    finds the JAAS configuration answered sensitive with no value (its own assertions)."""
    text = (ROOT / "docs" / "security.md").read_text()
    commands = next(
        b for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S) if "secrets keygen" in b
    )
    (tmp_path / "alice-password.txt").write_text("alice-secret\n")
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands],
        cwd=tmp_path,
        check=True,
        timeout=60,
        env={**os.environ, "PATH": path},
    )
    assert (tmp_path / "alice.enc").read_text().startswith("ENC[v1:")
    monkeypatch.chdir(tmp_path)
    run_example(example("security.md", "config.secret.key.file"), "docs/security.md")


def test_the_audit_log_example_records_and_verifies() -> None:
    """The audit log example: a SASL + ACL broker records admin's login, a Create and a
    Write of an audited topic, and `edplog audit verify` passes on its file (its own
    assertions)."""
    run_example(example("security.md", "audit.log.file"), "docs/security.md")


def test_the_audit_topic_example_writes_and_verifies() -> None:
    """The audit topic example: a SASL-only broker writes its chain into __edplog_audit
    through its own listener as admin, and `edplog audit verify --topic` passes on it with
    one writer (its own assertions)."""
    run_example(example("security.md", "audit.log.topic"), "docs/security.md")
