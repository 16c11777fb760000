"""Client quotas as Kafka has them (KIP-13, KIP-55, KIP-124, KIP-219, KIP-546), measured in
one place.

**Configuration.** A quota is set on an *entity*: a user, a client id, both, or an IP address,
each named or the *default* of its type (name ``None``). Users and client ids take
``producer_byte_rate``, ``consumer_byte_rate`` (bytes per second) and ``request_percentage``
(percent of one thread's time); IPs take ``connection_creation_rate`` (connections per
second). :class:`ClientQuotas` holds them and keeps them in ``quotas.json`` in the data
directory, replaced atomically (the previous version kept as ``quotas.json.prev`` for a
damaged file), and read back at start.

**Which quota applies.** For a request from user *u* with client id *c* Kafka takes, for each
quota type separately, the first entity of this list that has a value for it::

    user=u,client-id=c   user=u,client-id=<default>   user=u
    user=<default>,client-id=c   user=<default>,client-id=<default>   user=<default>
    client-id=c   client-id=<default>

and everyone the matched entity covers shares one measurement: the user part of the key is
*u* when the entity names a user (or its default), else empty; the same for the client id.
So a quota on ``client-id=q`` is shared by every user sending as ``q``, and a quota on the
default client id gives each client id a measurement of its own.

**Measuring.** :meth:`QuotaManager.record` is called by the dispatch once a response is
ready — bytes appended for Produce, bytes returned for Fetch, the handler's time for every
request (for Produce and Fetch the time until they hand a flush or a long poll to a task:
waiting is not handling, as Kafka leaves purgatory time out) — and adds the value to a
:class:`Rate` over ``quota.window.num`` samples of ``quota.window.size.seconds``. When the
rate is over the quota the request is throttled for ``(rate - quota) / quota * window``
(Kafka's formula: the time after which the rate would be back at the quota), the time goes
into the response's ``throttle_time_ms``, and the connection stops reading for that long
after sending it (KIP-219), so a client that ignores the field is held all the same. A
throttled Fetch still carries its records (Kafka answers it empty and uncounted instead:
measured here, that held a consumer a third below its quota, since the wait is computed as
if the dropped bytes had been sent); a Fetch never asks for more than the quota lets through
in one window, so what one response can overshoot is bounded.

When no quota is set (``active`` is false) the dispatch skips all of this: one attribute read
per request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequestError
from ..security.scram import ScramCredentials
from ..storage.checkpoint import write_atomically

log = logging.getLogger("edplog.broker")

QUOTAS_FILE = "quotas.json"
CREDENTIALS_FILE = "scram-credentials.json"
PREVIOUS_SUFFIX = ".prev"

USER = "user"
CLIENT_ID = "client-id"
IP = "ip"
ENTITY_TYPES = (USER, CLIENT_ID, IP)

PRODUCE = "producer_byte_rate"
FETCH = "consumer_byte_rate"
REQUEST = "request_percentage"
CONNECTION = "connection_creation_rate"
#: The keys each kind of entity takes, and whether the value must be a whole number.
CLIENT_KEYS = {PRODUCE: True, FETCH: True, REQUEST: False}
IP_KEYS = {CONNECTION: True}
#: The label of each quota type in the throttle-time metric (Kafka's quota type names).
QUOTA_TYPES = {PRODUCE: "Produce", FETCH: "Fetch", REQUEST: "Request", CONNECTION: "Connection"}

PRODUCE_API = 0
FETCH_API = 1
# Never throttled by request time: the version handshake and authentication (Kafka exempts
# what a client must send before it can read any throttle time).
EXEMPT_APIS = frozenset({17, 18, 36})

#: An entity: its (type, name) pairs in type order; name None is the type's default.
Entity = tuple[tuple[str, str | None], ...]


def entity_of(parts: Iterable[tuple[str, str | None]]) -> Entity:
    """The entity named by ``(type, name)`` pairs, validated as Kafka does."""
    seen: dict[str, str | None] = {}
    for kind, name in parts:
        if kind not in ENTITY_TYPES:
            raise InvalidRequestError(f"unknown quota entity type {kind!r}")
        if kind in seen:
            raise InvalidRequestError(f"quota entity type {kind!r} given twice")
        if name is not None and name == "" and kind != CLIENT_ID:
            raise InvalidRequestError(f"empty {kind} name (use null for the default)")
        if kind == IP and name is not None:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                raise InvalidRequestError(f"{name!r} is not an IP address") from None
        seen[kind] = name
    if not seen:
        raise InvalidRequestError("a quota entity needs at least one entity type")
    if IP in seen and len(seen) > 1:
        raise InvalidRequestError("an ip quota entity cannot be combined with user or client-id")
    return tuple(sorted(seen.items()))


def check_value(entity: Entity, key: str, value: float) -> None:
    """Refuse a key the entity does not take or a value Kafka would not accept."""
    keys = IP_KEYS if entity[0][0] == IP else CLIENT_KEYS
    if key not in keys:
        allowed = ", ".join(sorted(keys))
        raise InvalidRequestError(
            f"unknown quota key {key!r} for a {'/'.join(k for k, _ in entity)} entity "
            f"(known: {allowed})"
        )
    if not math.isfinite(value) or value <= 0:
        raise InvalidRequestError(f"quota {key} must be a positive number, not {value}")
    if keys[key] and value != int(value):
        raise InvalidRequestError(f"quota {key} must be a whole number, not {value}")


class JsonStateFile:
    """A small JSON document replaced atomically, with the previous version as fallback."""

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> Any:
        """The document; None when there is none. A damaged file falls back to the previous
        version (with a warning); both damaged raises ValueError."""
        prev = self.path + PREVIOUS_SUFFIX
        for candidate in (self.path, prev):
            if not os.path.exists(candidate):
                continue
            try:
                with open(candidate, encoding="utf-8") as f:
                    data = json.load(f)
            except (OSError, ValueError) as exc:
                log.warning("%s is unreadable (%s)", candidate, exc)
                continue
            if candidate == prev:
                log.warning("%s was damaged: using %s", self.path, prev)
            return data
        if os.path.exists(self.path) or os.path.exists(prev):
            raise ValueError(f"{self.path} and its previous version are both unreadable")
        return None

    def save(self, data: Any) -> None:
        text = json.dumps(data, indent=1, sort_keys=True)
        write_atomically(self.path, text.encode(), keep_previous=self.path + PREVIOUS_SUFFIX)


class ClientQuotas:
    """The quota values of every entity, persisted in ``quotas.json`` (module docstring)."""

    def __init__(self, data_dir: str) -> None:
        self.file = JsonStateFile(os.path.join(data_dir, QUOTAS_FILE))
        self.values: dict[Entity, dict[str, float]] = {}
        self.version = 0  # bumped on every change: caches of resolved quotas key on it
        self._lock = asyncio.Lock()

    def load(self) -> None:
        """Read the file (at start, off the event loop)."""
        data = self.file.load()
        if data is None:
            return
        values: dict[Entity, dict[str, float]] = {}
        for item in data["quotas"]:
            entity = entity_of((str(k), v) for k, v in item["entity"])
            vals = {str(k): float(v) for k, v in item["values"].items()}
            for key, value in vals.items():
                check_value(entity, key, value)
            if vals:
                values[entity] = vals
        self.values = values
        self.version += 1

    def _document(self, values: Mapping[Entity, Mapping[str, float]]) -> dict[str, Any]:
        return {
            "version": 0,
            "quotas": [
                {"entity": [list(p) for p in entity], "values": dict(sorted(vals.items()))}
                for entity, vals in sorted(values.items(), key=lambda e: repr(e[0]))
            ],
        }

    async def alter(self, changes: Mapping[Entity, Mapping[str, float | None]]) -> None:
        """Set (a value) or remove (None) keys of entities, on disk first, then in memory."""
        async with self._lock:
            values = {e: dict(v) for e, v in self.values.items()}
            for entity, ops in changes.items():
                current = values.setdefault(entity, {})
                for key, value in ops.items():
                    if value is None:
                        current.pop(key, None)
                    else:
                        current[key] = value
                if not current:
                    del values[entity]
            document = self._document(values)
            await asyncio.get_running_loop().run_in_executor(None, self.file.save, document)
            self.values = values
            self.version += 1

    def matching(
        self, components: list[tuple[str, int, str | None]], strict: bool
    ) -> list[tuple[Entity, dict[str, float]]]:
        """Entities a DescribeClientQuotas filter selects: every component must match (0:
        exactly this name, 1: the default, 2: any name of the type, the default included);
        with ``strict`` the entity has no other types."""
        wanted = {kind for kind, _, _ in components}
        out = []
        for entity, vals in self.values.items():
            names = dict(entity)
            if strict and set(names) != wanted:
                continue
            if all(_component_matches(names, c) for c in components):
                out.append((entity, dict(vals)))
        return sorted(out, key=lambda e: repr(e[0]))


def _component_matches(
    names: dict[str, str | None], component: tuple[str, int, str | None]
) -> bool:
    kind, match_type, match = component
    if kind not in names:
        return False
    if match_type == 0:
        return names[kind] == match
    if match_type == 1:
        return names[kind] is None
    return True


class Rate:
    """A rate over ``samples`` windows of ``window_ms`` (Kafka's SampledStat + Rate).

    The measured span counts at least ``samples - 1`` whole windows, so a fresh rate does
    not read a first burst as a huge rate over a few milliseconds. The sum of the samples
    is kept as they change, and old samples are only looked for once the oldest can have
    expired, so recording costs no loop over the samples.
    """

    __slots__ = (
        "_starts",
        "_values",
        "_current",
        "_total",
        "_expiry_ms",
        "samples",
        "window_ms",
        "last_ms",
    )

    def __init__(self, samples: int, window_ms: int, now_ms: float) -> None:
        self.samples = samples
        self.window_ms = window_ms
        self._starts = [now_ms] * samples
        self._values = [0.0] * samples
        self._current = 0
        self._total = 0.0
        self._expiry_ms = now_ms + samples * window_ms
        self.last_ms = now_ms

    def _purge(self, now_ms: float) -> None:
        """Reset the samples that have left the window (Kafka: purgeObsoleteSamples)."""
        horizon = self.samples * self.window_ms
        starts, values = self._starts, self._values
        for i in range(self.samples):
            if now_ms - starts[i] >= horizon:
                self._total -= values[i]
                starts[i] = now_ms
                values[i] = 0.0
        self._expiry_ms = min(starts) + horizon

    def record(self, value: float, now_ms: float) -> None:
        self.last_ms = now_ms
        if now_ms >= self._expiry_ms:
            self._purge(now_ms)
        i = self._current
        if now_ms - self._starts[i] >= self.window_ms:
            i = self._current = (i + 1) % self.samples
            self._total -= self._values[i]
            self._starts[i] = now_ms
            self._values[i] = 0.0
            self._expiry_ms = min(self._starts) + self.samples * self.window_ms
        self._values[i] += value
        self._total += value

    def unrecord(self, value: float) -> None:
        self._values[self._current] -= value
        self._total -= value

    def span_ms(self, now_ms: float) -> float:
        elapsed = now_ms - (self._expiry_ms - self.samples * self.window_ms)
        full = elapsed // self.window_ms
        if full < self.samples - 1:
            elapsed += (self.samples - 1 - full) * self.window_ms
        return max(elapsed, 1.0)

    def measure(self, now_ms: float) -> float:
        """Units per second."""
        if now_ms >= self._expiry_ms:
            self._purge(now_ms)
        return self._total * 1000.0 / self.span_ms(now_ms)


@dataclass(slots=True)
class _Sensor:
    rate: Rate
    quota: float


# Sensors not used for this long are dropped (Kafka expires quota sensors after an hour).
SENSOR_EXPIRY_MS = 3_600_000


class QuotaManager:
    """Applies the quotas of :class:`ClientQuotas` to requests (module docstring)."""

    def __init__(
        self,
        quotas: ClientQuotas,
        window_num: int = 11,
        window_size_s: int = 1,
        metrics: Any = None,
    ) -> None:
        self.quotas = quotas
        self.window_num = window_num
        self.window_ms = window_size_s * 1000
        self.metrics = metrics
        self._sensors: dict[tuple[str, str | None, str | None], _Sensor] = {}
        self._ip_sensors: dict[str, _Sensor] = {}
        self._resolved: dict[tuple[str, str, str], tuple[str, str | None, str | None, float]] = {}
        self._resolved_version = -1
        self._next_sweep_ms = 0.0

    @property
    def active(self) -> bool:
        """Whether any quota is set (the dispatch measures nothing otherwise)."""
        return bool(self.quotas.values)

    @property
    def max_throttle_ms(self) -> int:
        return self.window_num * self.window_ms

    def max_value_in_window(self, quota: float) -> int | None:
        """The most a quota lets through in one window (None: no quota)."""
        if quota == math.inf:
            return None
        return max(1, int(quota * (self.window_num - 1) * self.window_ms / 1000))

    def quota_for(
        self, key: str, user: str, client_id: str
    ) -> tuple[str | None, str | None, float]:
        """(user tag, client-id tag, quota) of the entity that applies; quota inf: none."""
        if self._resolved_version != self.quotas.version:
            self._resolved.clear()
            self._resolved_version = self.quotas.version
        cached = self._resolved.get((key, user, client_id))
        if cached is not None:
            return cached[1], cached[2], cached[3]
        values = self.quotas.values
        found: tuple[str | None, str | None, float] = (None, None, math.inf)
        for entity, tags in (
            (((CLIENT_ID, client_id), (USER, user)), (user, client_id)),
            (((CLIENT_ID, None), (USER, user)), (user, client_id)),
            (((USER, user),), (user, None)),
            (((CLIENT_ID, client_id), (USER, None)), (user, client_id)),
            (((CLIENT_ID, None), (USER, None)), (user, client_id)),
            (((USER, None),), (user, None)),
            (((CLIENT_ID, client_id),), (None, client_id)),
            (((CLIENT_ID, None),), (None, client_id)),
        ):
            value = values.get(entity, {}).get(key)
            if value is not None:
                found = (tags[0], tags[1], value)
                break
        self._resolved[(key, user, client_id)] = (key, *found)
        return found

    def _sensor(self, key: str, user: str, client_id: str, now_ms: float) -> _Sensor | None:
        user_tag, client_tag, quota = self.quota_for(key, user, client_id)
        if quota == math.inf:
            return None
        skey = (key, user_tag, client_tag)
        sensor = self._sensors.get(skey)
        if sensor is not None:
            sensor.quota = quota  # an altered quota applies to the running measurement
        else:
            if now_ms >= self._next_sweep_ms:
                self._sweep(now_ms)
            sensor = self._sensors[skey] = _Sensor(
                Rate(self.window_num, self.window_ms, now_ms), quota
            )
        return sensor

    def _sweep(self, now_ms: float) -> None:
        self._next_sweep_ms = now_ms + SENSOR_EXPIRY_MS / 10
        for skey, sensor in list(self._sensors.items()):
            if now_ms - sensor.rate.last_ms > SENSOR_EXPIRY_MS:
                del self._sensors[skey]

    def _throttle_ms(self, sensor: _Sensor, now_ms: float) -> int:
        rate = sensor.rate.measure(now_ms)
        if rate <= sensor.quota:
            return 0
        ms = (rate - sensor.quota) / sensor.quota * sensor.rate.span_ms(now_ms)
        return int(min(round(ms), self.max_throttle_ms))

    def record(self, key: str, user: str, client_id: str, value: float) -> int:
        """Add ``value`` to the measurement of ``key`` for this client; the throttle time
        in ms (0: within the quota, or no quota applies)."""
        now_ms = time.monotonic() * 1000.0
        sensor = self._sensor(key, user, client_id, now_ms)
        if sensor is None:
            return 0
        sensor.rate.record(value, now_ms)
        ms = self._throttle_ms(sensor, now_ms)
        if ms and self.metrics is not None:
            self.metrics.throttle(QUOTA_TYPES[key], ms / 1000.0)
        return ms

    def connection_throttle_ms(self, host: str) -> int:
        """Record a new connection from ``host``; ms to hold it before closing it when the
        IP's ``connection_creation_rate`` is exceeded (KIP-612), else 0."""
        values = self.quotas.values
        if not values:
            return 0
        quota = values.get(((IP, host),), {}).get(CONNECTION)
        if quota is None:
            quota = values.get(((IP, None),), {}).get(CONNECTION)
        if quota is None:
            return 0
        now_ms = time.monotonic() * 1000.0
        sensor = self._ip_sensors.get(host)
        if sensor is None:
            if len(self._ip_sensors) > 10_000:
                self._ip_sensors = {
                    h: s
                    for h, s in self._ip_sensors.items()
                    if now_ms - s.rate.last_ms <= SENSOR_EXPIRY_MS
                }
            sensor = self._ip_sensors[host] = _Sensor(
                Rate(self.window_num, self.window_ms, now_ms), quota
            )
        sensor.quota = quota
        sensor.rate.record(1.0, now_ms)
        ms = self._throttle_ms(sensor, now_ms)
        if ms:
            sensor.rate.unrecord(1.0)  # a refused connection is not counted (KIP-612)
            if self.metrics is not None:
                self.metrics.throttle(QUOTA_TYPES[CONNECTION], ms / 1000.0)
        return ms


def produce_bytes(request: dict[str, Any], response: dict[str, Any] | None) -> int:
    """Bytes of the records a Produce appended (partitions answered without error)."""
    total = 0
    if response is None:  # acks=0: every partition's records count
        for topic in request["topic_data"]:
            for p in topic["partition_data"]:
                records = p["records"]
                total += len(records) if records is not None else 0
        return total
    for topic, answered in zip(request["topic_data"], response["responses"], strict=False):
        for p, r in zip(topic["partition_data"], answered["partition_responses"], strict=False):
            records = p["records"]
            if records is not None and not r["error_code"]:
                total += len(records)
    return total


def fetch_bytes(response: dict[str, Any]) -> int:
    """Bytes of records a Fetch response returns."""
    total = 0
    for topic in response["responses"]:
        for p in topic["partitions"]:
            records = p["records"]
            if isinstance(records, list):
                total += sum(r.length for r in records)
            elif records:
                total += len(records)
    return total


class CredentialStore:
    """The SCRAM credentials of the broker, persisted in ``scram-credentials.json``."""

    def __init__(self, data_dir: str) -> None:
        self.file = JsonStateFile(os.path.join(data_dir, CREDENTIALS_FILE))
        self.credentials = ScramCredentials()
        self._lock = asyncio.Lock()

    def load(self) -> None:
        data = self.file.load()
        if data is not None:
            self.credentials = ScramCredentials.from_json(data["users"])

    async def replace(self, make: Any) -> None:
        """Swap in ``make(current)`` once it is on disk (alterations never interleave)."""
        async with self._lock:
            new = make(self.credentials)
            document = {"version": 0, "users": new.to_json()}
            await asyncio.get_running_loop().run_in_executor(None, self.file.save, document)
            self.credentials = new
