"""Metrics: the broker's registry (prometheus-client) and its exposition."""

from __future__ import annotations

from .registry import BrokerMetrics

__all__ = ["BrokerMetrics"]
