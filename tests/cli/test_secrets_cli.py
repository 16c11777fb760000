"""`edplog secrets`: keygen and encrypt run as commands, the secret given on standard input
(never as an argument). Each test says what was tried and what must hold."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from edplog.security.secrets import SecretKey


def edplog(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "edplog", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_the_cli_makes_a_key_and_encrypts_from_stdin(tmp_path: Path) -> None:
    """`edplog secrets keygen --out` writes a 0600 key and refuses to overwrite it;
    `edplog secrets encrypt --key-file` reads the secret from stdin (one trailing newline
    dropped) and prints an ENC value that decrypts with the key; --key-env works the same;
    empty input is refused; there is no decrypt command."""
    out = edplog("secrets", "keygen", "--out", str(tmp_path / "k"))
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    again = edplog("secrets", "keygen", "--out", str(tmp_path / "k"))
    assert again.returncode == 2 and "never overwritten" in again.stderr
    key = SecretKey.from_file(tmp_path / "k")
    enc = edplog("secrets", "encrypt", "--key-file", str(tmp_path / "k"), stdin="s3cr3t\n")
    assert enc.returncode == 0, enc.stderr
    assert "s3cr3t" not in enc.stdout + enc.stderr
    assert key.decrypt(enc.stdout.strip()) == "s3cr3t"
    by_env = edplog("secrets", "encrypt", "--key-env", "K", stdin="x y", env={"K": key.text()})
    assert key.decrypt(by_env.stdout.strip()) == "x y"
    empty = edplog("secrets", "encrypt", "--key-file", str(tmp_path / "k"), stdin="")
    assert empty.returncode == 2 and "nothing to encrypt" in empty.stderr
    assert edplog("secrets", "decrypt").returncode == 2


def test_edplog_broker_refuses_a_bad_reference_without_quoting_secrets(tmp_path: Path) -> None:
    """`edplog broker --config` with a ${file:...} reference to a key the file lacks, and an
    ENC value made with another key, exits 2 naming the property and the reference; the
    other passwords of that file and the decrypted text appear nowhere in its output."""
    key = tmp_path / "k"
    SecretKey.generate().write(key)
    (tmp_path / "pw.properties").write_text("alice=alice-Secret-3\n")
    ref = f"${{file:{tmp_path}/pw.properties:bob}}"
    config = tmp_path / "server.properties"
    base = (
        f"log.dirs={tmp_path}/data\n"
        "config.providers=file\n"
        "config.providers.file.class="
        "org.apache.kafka.common.config.provider.FileConfigProvider\n"
        f"config.secret.key.file={key}\n"
    )
    config.write_text(base + f"ok.password=${{file:{tmp_path}/pw.properties:alice}}\nx={ref}\n")
    out = edplog("broker", "--config", str(config), "--listen", "127.0.0.1:0")
    assert out.returncode == 2, out.stderr
    assert f"x: {ref}" in out.stderr and "has no key bob" in out.stderr
    assert "alice-Secret-3" not in out.stdout + out.stderr
    token = SecretKey.generate().encrypt("carol-Secret-4")
    config.write_text(base + f"y.password={token}\n")
    out = edplog("broker", "--config", str(config), "--listen", "127.0.0.1:0")
    assert out.returncode == 2, out.stderr
    assert "y.password: cannot decrypt: wrong key or edited value" in out.stderr
    assert "carol-Secret-4" not in out.stdout + out.stderr
