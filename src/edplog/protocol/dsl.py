"""Parser for the message description format of :mod:`edplog.protocol.schema`.

The parser turns the text into plain dataclasses (:class:`Api`, :class:`Field`) that the code
generator walks; it checks the text strictly at import time so a typo in a schema line fails
loudly instead of producing a codec that is wrong for one version.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

#: Fixed-width types and their :mod:`struct` format characters (big-endian, Kafka's order).
FIXED_FORMATS: dict[str, str] = {
    "int8": "b",
    "int16": "h",
    "int32": "i",
    "int64": "q",
    "uint16": "H",
    "uint32": "I",
    "float64": "d",
    "bool": "?",
}
VARIABLE_TYPES = frozenset({"string", "bytes", "uuid", "records"})
PRIMITIVE_TYPES = frozenset(FIXED_FORMATS) | VARIABLE_TYPES
ZERO_UUID = uuid.UUID(int=0)
MAX_VERSION = 0x7FFF


@dataclass
class Field:
    """One field of a message or nested struct.

    ``kind`` is ``"prim"``, ``"array"`` (of a primitive ``type``), ``"structs"`` (array of
    structs with ``fields``) or ``"struct"``. Version ranges are inclusive ``(lo, hi)``.
    """

    name: str
    kind: str
    type: str
    versions: tuple[int, int] = (0, MAX_VERSION)
    nullable: tuple[int, int] | None = None
    tag: int | None = None
    default: object = None
    has_default: bool = False
    fields: list[Field] = field(default_factory=list)

    def exists(self, version: int) -> bool:
        """Whether the field is part of ``version`` of its message."""
        return self.versions[0] <= version <= self.versions[1]

    def is_nullable(self, version: int) -> bool:
        """Whether ``version`` may carry null for this field."""
        return self.nullable is not None and self.nullable[0] <= version <= self.nullable[1]

    def default_value(self) -> object:
        """A fresh default value: Kafka's default, else zero / empty / null by type."""
        if self.kind == "struct":
            if self.has_default:  # a nullable struct that defaults to null
                return self.default
            return {f.name: f.default_value() for f in self.fields}
        if self.has_default:
            return self.default
        # As in Kafka's generated classes, nullable fields default to empty, not null,
        # unless the schema says ``=null``; records are the exception (null).
        if self.kind in ("array", "structs"):
            return []
        return {
            "string": "",
            "bytes": b"",
            "uuid": ZERO_UUID,
            "records": None,
            "bool": False,
            "float64": 0.0,
        }.get(self.type, 0)


@dataclass
class Api:
    """One API: its key, name, version range, first flexible version and both messages."""

    key: int
    name: str
    min_version: int
    max_version: int
    flexible_from: int | None
    request: list[Field] = field(default_factory=list)
    response: list[Field] = field(default_factory=list)

    def is_flexible(self, version: int) -> bool:
        """Whether ``version`` uses compact encodings and tagged fields."""
        return self.flexible_from is not None and version >= self.flexible_from


class SchemaSyntaxError(ValueError):
    """A line of the schema text is not valid description format."""


def _versions(spec: str, line: str) -> tuple[int, int]:
    try:
        if spec.endswith("+"):
            return int(spec[:-1]), MAX_VERSION
        if "-" in spec:
            lo, hi = spec.split("-", 1)
            return int(lo), int(hi)
        return int(spec), int(spec)
    except ValueError:
        raise SchemaSyntaxError(f"bad version range {spec!r} in: {line}") from None


def _default(text: str, line: str) -> object:
    if text == "null":
        return None
    if text == "true":
        return True
    if text == "false":
        return False
    if text == "''":
        return ""
    try:
        return int(text, 0)
    except ValueError:
        raise SchemaSyntaxError(f"bad default {text!r} in: {line}") from None


def _parse_field(line: str) -> Field:
    tokens = line.split()
    if len(tokens) < 2:
        raise SchemaSyntaxError(f"field needs a name and a type: {line}")
    name, type_ = tokens[0], tokens[1]
    if type_ == "[]":
        fld = Field(name, "structs", "struct")
    elif type_ == "{}":
        fld = Field(name, "struct", "struct")
    elif type_.startswith("[]") and type_[2:] in PRIMITIVE_TYPES:
        fld = Field(name, "array", type_[2:])
    elif type_ in PRIMITIVE_TYPES:
        fld = Field(name, "prim", type_)
    else:
        raise SchemaSyntaxError(f"unknown type {type_!r} in: {line}")
    for tok in tokens[2:]:
        if tok.startswith("null"):
            fld.nullable = _versions(tok[4:], line)
        elif tok.startswith("v"):
            fld.versions = _versions(tok[1:], line)
        elif tok.startswith("tag"):
            fld.tag = int(tok[3:])
        elif tok.startswith("="):
            fld.default, fld.has_default = _default(tok[1:], line), True
        else:
            raise SchemaSyntaxError(f"unknown attribute {tok!r} in: {line}")
    return fld


def parse(text: str) -> dict[int, Api]:
    """Parse schema text into ``{api_key: Api}``; raises :class:`SchemaSyntaxError`."""
    apis: dict[int, Api] = {}
    api: Api | None = None
    # stack of (indent, field list) to attach nested fields to their parent struct
    stack: list[tuple[int, list[Field]]] = []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        line = raw.strip()
        if indent == 0:
            words = line.split()
            if words[0] == "api":
                if len(words) != 6 or words[4] != "flex":
                    raise SchemaSyntaxError(f"bad api line: {line}")
                lo, hi = _versions(words[3], line)
                flex = None if words[5] == "none" else int(words[5])
                api = Api(int(words[1]), words[2], lo, hi, flex)
                if api.key in apis:
                    raise SchemaSyntaxError(f"api key {api.key} described twice")
                apis[api.key] = api
            elif words[0] in ("request", "response") and api is not None:
                stack = [(0, getattr(api, words[0]))]
            else:
                raise SchemaSyntaxError(f"unexpected line: {line}")
            continue
        if not stack:
            raise SchemaSyntaxError(f"field outside a message: {line}")
        while stack and indent <= stack[-1][0] and len(stack) > 1:
            stack.pop()
        fld = _parse_field(line)
        stack[-1][1].append(fld)
        if fld.kind in ("structs", "struct"):
            stack.append((indent, fld.fields))
    for a in apis.values():
        _inherit_versions(a.request, (0, MAX_VERSION))
        _inherit_versions(a.response, (0, MAX_VERSION))
    return apis


def _inherit_versions(fields: list[Field], parent: tuple[int, int]) -> None:
    """Clip nested fields to their parent's versions, as Kafka's schemas imply."""
    for f in fields:
        f.versions = (max(f.versions[0], parent[0]), min(f.versions[1], parent[1]))
        if f.fields:
            _inherit_versions(f.fields, f.versions)
