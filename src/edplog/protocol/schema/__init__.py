"""The Kafka messages edplog speaks, each described once in a small text format.

Why text and not one Python class per message: every version of a message is then derived
from a single description, so a field added in version 7 is one line with ``v7+`` rather
than seven hand-kept encoders. :mod:`edplog.protocol.dsl` parses the text; the code
generator builds the per-version codecs from it.

Format (indentation gives nesting, two spaces per level)::

    api <key> <Name> <min>-<max> flex <first flexible version | none>
    request | response
      <snake_name> <type> [vA+ | vA-B | vA] [nullA+ | nullA-B] [tagN] [=default]

Types: int8 int16 int32 int64 uint16 uint32 float64 bool string bytes uuid records,
``[]<primitive>`` for arrays of primitives, ``[]`` for an array of structs and ``{}`` for a
single struct (their fields follow, indented). A field without ``v`` exists in every version;
``tagN`` makes it tagged field ``N`` (only in flexible versions). Defaults follow Kafka's:
``=-1``, ``=null``, ``=true``, a number, or ``=''``.
"""

from __future__ import annotations

from .admin import TEXT as ADMIN_TEXT
from .clients import TEXT as CLIENTS_TEXT
from .groups import TEXT as GROUPS_TEXT

TEXT: str = CLIENTS_TEXT + GROUPS_TEXT + ADMIN_TEXT

__all__ = ["TEXT"]
