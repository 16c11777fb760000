"""The broker's request handlers, one module per API family.

Each module lists its APIs in ``APIS``: the API key, the handler ``(ctx, services, request)``,
whether it may answer inside the dispatch (``inline``), and the error response to send when the
handler raises (``error_body(request, code)``), so the dispatch maps every failure in one
place. Handlers import only :mod:`edplog.broker.context` from the broker.
"""

from __future__ import annotations

from . import (
    acls,
    cluster_admin,
    configs,
    consumer_groups,
    fetch,
    groups,
    logdirs,
    metadata,
    offsets,
    produce,
    quotas,
    sasl,
    scram,
    topics,
)
from .registry import ApiSpec

__all__ = ["ALL_APIS", "ApiSpec"]

#: Every API this broker serves, by API key.
ALL_APIS: dict[int, ApiSpec] = {
    spec.key: spec
    for module in (
        metadata,
        produce,
        fetch,
        offsets,
        topics,
        configs,
        groups,
        logdirs,
        consumer_groups,
        quotas,
        scram,
        sasl,
        acls,
        cluster_admin,
    )
    for spec in module.APIS
}
