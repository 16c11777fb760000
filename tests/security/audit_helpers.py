"""What the audit tests share: a PLAIN login's client settings for a broker's CLIENTS listener,
and ``edplog audit verify --topic`` run as its own process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from edplog.broker.runner import BackgroundBroker


def sasl(broker: BackgroundBroker, user: str, password: str) -> dict[str, Any]:
    """confluent-kafka settings that log in as ``user`` on the broker's CLIENTS listener."""
    return {
        "bootstrap.servers": broker.bootstrap_for("CLIENTS"),
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": user,
        "sasl.password": password,
    }


def verify_topic(
    bootstrap: str, topic: str, command_config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``edplog audit verify --topic`` against ``bootstrap`` (with the client properties in
    ``command_config``)."""
    extra = ["--command-config", str(command_config)] if command_config is not None else []
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "edplog",
            "audit",
            "verify",
            "--topic",
            topic,
            "--bootstrap-server",
            bootstrap,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
