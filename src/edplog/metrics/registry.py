"""The broker's metrics, in a prometheus-client registry of their own.

Recorded on the request path (each costs a dictionary lookup and a locked add; the children
of labelled metrics are cached so no label tuple is built per request):

- ``edplog_requests_total{api,version}`` and ``edplog_request_seconds{api,version}``: every
  request, timed from the frame's arrival to its response being ready;
- ``edplog_request_errors_total{api,code}``: requests the dispatch answered with an error;
- ``edplog_produce_errors_total{code}``, ``edplog_fetch_errors_total{code}``: per-partition
  errors of the two hot APIs;
- ``edplog_bytes_in_total{topic}``, ``edplog_bytes_out_total{topic}``: record bytes appended
  and sent;
- ``edplog_flush_seconds``: each group-committed fsync round;
- ``edplog_quota_throttle_seconds{quota_type}``: the throttle time of each request (or new
  connection) a client quota held back, by quota type (Produce, Fetch, Request, Connection);
- ``edplog_connections``, ``edplog_request_queue_bytes``: open connections and the bytes of
  requests received but not yet answered;
- ``edplog_fetch_sessions``, ``edplog_fetch_sessions_partitions`` and
  ``edplog_fetch_sessions_evicted_total``: the KIP-227 fetch-session cache (set when a session
  is created, changed in size or removed, not per fetch);
- ``edplog_authentications_total{listener,mechanism,result}``: SASL logins by outcome
  (``success``, ``reauthentication``, ``failure``), counted once per login, not per request.

Read at scrape time from the objects themselves (nothing on the hot path):
``edplog_log_end_offset``, ``edplog_log_start_offset`` and ``edplog_log_size_bytes`` per
partition, and ``edplog_partitions_offline``.

``BrokerMetrics(enabled=False)`` records nothing (each call returns at once), which is how
``edplog perf`` measures the recording cost against the same broker without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..errors import ErrorCode
from ..protocol import API_NAMES

# Request latencies from tens of microseconds (an inline Produce) to a long poll's seconds.
_LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
# Throttle times run from a few milliseconds to the whole quota window (11 s by default).
_THROTTLE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_FLUSH_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


class _LogCollector(Collector):
    """Per-partition gauges read from the logs at scrape time."""

    def __init__(
        self, source: Callable[[], Iterable[tuple[str, int, Any]]], offline: Callable[[], int]
    ) -> None:
        self._source = source
        self._offline = offline

    def collect(self) -> Iterator[GaugeMetricFamily]:
        end = GaugeMetricFamily(
            "edplog_log_end_offset",
            "The offset the next record will get",
            labels=["topic", "partition"],
        )
        start = GaugeMetricFamily(
            "edplog_log_start_offset",
            "The first offset still stored",
            labels=["topic", "partition"],
        )
        size = GaugeMetricFamily(
            "edplog_log_size_bytes",
            "Bytes of the partition's segments",
            labels=["topic", "partition"],
        )
        for topic, partition, log in self._source():
            labels = [topic, str(partition)]
            end.add_metric(labels, log.log_end_offset)
            start.add_metric(labels, log.log_start_offset)
            size.add_metric(labels, log.size_bytes)
        offline = GaugeMetricFamily(
            "edplog_partitions_offline", "Partitions that could not be opened"
        )
        offline.add_metric([], self._offline())
        yield from (end, start, size, offline)


class BrokerMetrics:
    """The broker's metrics (see the module docstring)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = Counter(
            "edplog_requests", "Requests served", ["api", "version"], registry=r
        )
        self._latency = Histogram(
            "edplog_request_seconds",
            "Time from a request's arrival to its response being ready",
            ["api", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._request_errors = Counter(
            "edplog_request_errors", "Requests answered with an error", ["api", "code"], registry=r
        )
        self._produce_errors = Counter(
            "edplog_produce_errors", "Produce partition errors", ["code"], registry=r
        )
        self._fetch_errors = Counter(
            "edplog_fetch_errors", "Fetch partition errors", ["code"], registry=r
        )
        self._bytes_in = Counter(
            "edplog_bytes_in", "Record bytes appended by producers", ["topic"], registry=r
        )
        self._bytes_out = Counter(
            "edplog_bytes_out", "Record bytes sent to fetchers", ["topic"], registry=r
        )
        self.flush_seconds = Histogram(
            "edplog_flush_seconds",
            "Duration of each group-committed flush round",
            buckets=_FLUSH_BUCKETS,
            registry=r,
        )
        self._throttle = Histogram(
            "edplog_quota_throttle_seconds",
            "Throttle time of each request a client quota held back",
            ["quota_type"],
            buckets=_THROTTLE_BUCKETS,
            registry=r,
        )
        self.connections = Gauge("edplog_connections", "Open client connections", registry=r)
        self.request_queue_bytes = Gauge(
            "edplog_request_queue_bytes",
            "Bytes of requests received and not yet answered",
            registry=r,
        )
        self.fetch_sessions = Gauge(
            "edplog_fetch_sessions", "Incremental fetch sessions cached (KIP-227)", registry=r
        )
        self.fetch_session_partitions = Gauge(
            "edplog_fetch_sessions_partitions",
            "Partitions held by all cached fetch sessions",
            registry=r,
        )
        self.fetch_session_evictions = Counter(
            "edplog_fetch_sessions_evicted",
            "Fetch sessions evicted from a full cache to make room for another",
            registry=r,
        )
        self._authentications = Counter(
            "edplog_authentications",
            "SASL logins by listener, mechanism and outcome",
            ["listener", "mechanism", "result"],
            registry=r,
        )
        self.audit_dropped_records = Counter(
            "edplog_audit_dropped_records",
            "Audit records dropped because the audit log's queue was full",
            registry=r,
        )
        self._timed: dict[tuple[int, int], tuple[Any, Any]] = {}
        self._topics_in: dict[str, Any] = {}
        self._topics_out: dict[str, Any] = {}

    def watch_logs(
        self, source: Callable[[], Iterable[tuple[str, int, Any]]], offline: Callable[[], int]
    ) -> None:
        """Report per-partition gauges from ``source()`` at each scrape."""
        self.registry.register(_LogCollector(source, offline))

    # ---- the request path --------------------------------------------------------------------

    def request(self, api_key: int, version: int, seconds: float) -> None:
        if not self.enabled:
            return
        pair = self._timed.get((api_key, version))
        if pair is None:
            labels = (API_NAMES.get(api_key, str(api_key)), str(version))
            pair = (self._requests.labels(*labels), self._latency.labels(*labels))
            self._timed[(api_key, version)] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def request_error(self, api_key: int, code: int) -> None:
        if self.enabled:
            self._request_errors.labels(
                API_NAMES.get(api_key, str(api_key)), _code_name(code)
            ).inc()

    def produce_error(self, code: int) -> None:
        if self.enabled:
            self._produce_errors.labels(_code_name(code)).inc()

    def fetch_error(self, code: int) -> None:
        if self.enabled:
            self._fetch_errors.labels(_code_name(code)).inc()

    def fetch_session_cache(self, sessions: int, partitions: int) -> None:
        """The fetch-session cache's size after a session was created, changed or removed."""
        self.fetch_sessions.set(sessions)
        self.fetch_session_partitions.set(partitions)

    def authentication(
        self, listener: str, mechanism: str | None, ok: bool, again: bool = False
    ) -> None:
        if self.enabled:
            result = ("reauthentication" if again else "success") if ok else "failure"
            self._authentications.labels(listener, mechanism or "none", result).inc()

    def fetch_session_evicted(self) -> None:
        self.fetch_session_evictions.inc()

    def audit_dropped(self, n: int) -> None:
        self.audit_dropped_records.inc(n)

    def bytes_in(self, topic: str, n: int) -> None:
        if not self.enabled:
            return
        child = self._topics_in.get(topic)
        if child is None:
            child = self._topics_in[topic] = self._bytes_in.labels(topic)
        child.inc(n)

    def bytes_out(self, topic: str, n: int) -> None:
        if not self.enabled:
            return
        child = self._topics_out.get(topic)
        if child is None:
            child = self._topics_out[topic] = self._bytes_out.labels(topic)
        child.inc(n)

    def flush(self, seconds: float) -> None:
        if self.enabled:
            self.flush_seconds.observe(seconds)

    def throttle(self, quota_type: str, seconds: float) -> None:
        if self.enabled:
            self._throttle.labels(quota_type).observe(seconds)

    def forget_topic(self, topic: str) -> None:
        """A deleted topic stops being reported."""
        for cache, metric in (
            (self._topics_in, self._bytes_in),
            (self._topics_out, self._bytes_out),
        ):
            if cache.pop(topic, None) is not None:
                try:
                    metric.remove(topic)
                except KeyError:
                    pass
