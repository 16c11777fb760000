"""edplog: Kafka-format partition logs in C, an embeddable Python library and a broker."""

from __future__ import annotations

try:
    from . import _native
except ImportError as exc:  # never fall back to a slower path silently
    raise ImportError(
        "edplog's native extension (edplog._native) is missing or failed to load: "
        f"{exc}. Reinstall with a C compiler, cmake and Cython available: pip install ."
    ) from exc

from .errors import EdplogError

__version__ = "0.1.0"
__all__ = ["EdplogError", "__version__"]
