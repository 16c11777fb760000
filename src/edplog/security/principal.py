"""Kafka principals: ``<type>:<name>``, e.g. ``User:alice`` (KafkaPrincipal's string form)."""

from __future__ import annotations

from typing import NamedTuple


class Principal(NamedTuple):
    principal_type: str
    name: str

    def __str__(self) -> str:
        return f"{self.principal_type}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> Principal:
        """``User:alice`` -> Principal("User", "alice"); the type is required."""
        kind, sep, name = text.partition(":")
        if not sep or not kind or not name:
            raise ValueError(f"a principal is <type>:<name>, not {text!r}")
        return cls(kind, name)


#: The principal of an unauthenticated connection, as Kafka names it.
ANONYMOUS = Principal("User", "ANONYMOUS")
