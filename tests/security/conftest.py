"""What the security tests share: ``start``, brokers in this process, stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edplog.broker.config import BrokerConfig
from edplog.broker.runner import BackgroundBroker


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    """``start(properties)``: a broker in this process with its own data dir under the
    test's tmp_path; every one started is stopped when the test ends."""
    started: list[BackgroundBroker] = []

    def start(props: dict[str, str]) -> BackgroundBroker:
        props = {**props, "log.dirs": str(tmp_path / f"data{len(started)}")}
        broker = BackgroundBroker(BrokerConfig.from_properties(props)).start()
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()
