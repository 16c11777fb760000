"""The three-broker in-process cluster most cluster tests share."""

from __future__ import annotations

import pytest
from cluster_helpers import InProcessCluster


@pytest.fixture
def cluster(zookeeper, tmp_path):
    """Three brokers in this process on their own loopback addresses, on a fresh chroot."""
    c = InProcessCluster(zookeeper, tmp_path, 3)
    c.start_all()
    try:
        yield c
    finally:
        c.stop_all()
