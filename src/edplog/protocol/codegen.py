"""Build straight-line decoders and encoders from the parsed schema.

For each (api, version, direction) the generator writes Python source with one function per
struct — fields unrolled, consecutive fixed-width fields read or written by one pre-compiled
:class:`struct.Struct`, version checks resolved at generation time — and compiles it with
``exec``. Interpreting the schema at run time instead would cost a dictionary walk and a
version test per field per message; generated code does neither.

Decoders have the signature ``(buf, p, end) -> (dict, p)`` and rely on the caller to turn
``struct.error``/``IndexError``/``UnicodeDecodeError`` into :class:`ProtocolError`; lengths are
checked against ``end`` explicitly, so a claimed length can never allocate more than the
frame holds. Encoders have the signature ``(obj, b, parts) -> b``: they append to the
bytearray ``b`` and, when a ``records`` value holds a :class:`FileRegion` or a large buffer,
move ``b`` into ``parts``, append the region and continue in a fresh bytearray.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any, cast

from . import wire
from .dsl import FIXED_FORMATS, ZERO_UUID, Field
from .wire import FileRegion

NULL16 = b"\xff\xff"
NULL32 = b"\xff\xff\xff\xff"
#: Record buffers at least this large are passed through as their own part instead of being
#: copied into the surrounding bytearray.
LARGE_PART_BYTES = 16384

Decoder = Callable[[memoryview, int, int], tuple[dict[str, Any], int]]
Encoder = Callable[[dict[str, Any], bytearray, list[Any]], bytearray]


def _records_len(value: Any) -> int:
    if type(value) is list:
        return sum(cast(FileRegion, x).length if isinstance(x, tuple) else len(x) for x in value)
    return len(value) if not isinstance(value, tuple) else cast(FileRegion, value).length


def _records_put(value: Any, b: bytearray, parts: list[Any]) -> bytearray:
    items = value if type(value) is list else (value,)
    for item in items:
        if isinstance(item, tuple) or len(item) >= LARGE_PART_BYTES:
            if b:
                parts.append(b)
            parts.append(item)
            b = bytearray()
        else:
            b += item
    return b


def _nbytes(value: Any) -> int:
    if isinstance(value, memoryview):
        return value.nbytes
    return len(value)


def _to_bytes(value: Any) -> bytes:
    """Encoding of a string field: ``str`` is UTF-8 encoded, bytes-like passes through."""
    return value.encode() if type(value) is str else bytes(value)


def _uuid_bytes(value: Any) -> bytes:
    if isinstance(value, uuid.UUID):
        return value.bytes
    if value is None:
        return bytes(16)
    b = bytes(value)
    if len(b) != 16:
        raise wire.ProtocolError("a uuid needs 16 bytes")
    return b


def _array_len(n: int, p: int, end: int) -> None:
    if n > end - p:
        raise wire.ProtocolError("array length exceeds the remaining frame")


BASE_NAMESPACE: dict[str, Any] = {
    "E": wire.ProtocolError,
    "UV": wire.read_uvarint,
    "UVE": wire.uvarint,
    "I16": wire.I16.unpack_from,
    "I32": wire.I32.unpack_from,
    "P16": wire.I16.pack,
    "P32": wire.I32.pack,
    "UUID": uuid.UUID,
    "ZU": ZERO_UUID,
    "RLEN": _records_len,
    "RPUT": _records_put,
    "NB": _nbytes,
    "TB": _to_bytes,
    "UB": _uuid_bytes,
    "unpack_from": struct.unpack_from,
    "pack": struct.pack,
    "ALEN": _array_len,
}


class _Gen:
    """Accumulates the source and constants of one compiled unit."""

    def __init__(self, version: int, flexible: bool) -> None:
        self.version = version
        self.flex = flexible
        self.ns: dict[str, Any] = dict(BASE_NAMESPACE)
        self.src: list[str] = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, value: Any) -> str:
        key = self.name("K")
        self.ns[key] = value
        return key

    def default_expr(self, f: Field) -> str:
        value = f.default_value()
        if isinstance(value, uuid.UUID):
            return "ZU"
        if isinstance(value, dict | list) and _has_uuid(value):
            return f"_deepcopy({self.const(value)})"
        return repr(value)

    # ---------------------------------------------------------------- decoding

    def decoder(self, fields: list[Field]) -> str:
        fn = self.name("D")
        body: list[str] = []
        out: list[str] = []
        tagged: list[Field] = []
        i = 0
        while i < len(fields):
            f = fields[i]
            if not f.exists(self.version):
                out.append(f"{f.name!r}: {self.default_expr(f)}")
                i += 1
                continue
            if f.tag is not None:
                if self.flex:
                    tagged.append(f)
                    out.append(f"{f.name!r}: t_{f.name}")
                else:
                    out.append(f"{f.name!r}: {self.default_expr(f)}")
                i += 1
                continue
            group = []
            while (
                i < len(fields)
                and fields[i].exists(self.version)
                and fields[i].tag is None
                and fields[i].kind == "prim"
                and fields[i].type in FIXED_FORMATS
            ):
                group.append(fields[i])
                i += 1
            if group:
                st = struct.Struct(">" + "".join(FIXED_FORMATS[g.type] for g in group))
                k = self.const(st.unpack_from)
                names = ", ".join(f"v_{g.name}" for g in group)
                body.append(f"{names}, = {k}(buf, p); p += {st.size}")
                out.extend(f"{g.name!r}: v_{g.name}" for g in group)
                continue
            body.extend(self.dec_value(f, f"v_{f.name}", "end"))
            out.append(f"{f.name!r}: v_{f.name}")
            i += 1
        if self.flex:
            for f in tagged:
                body.append(f"t_{f.name} = {self.default_expr(f)}")
            # almost every struct carries no tags: one byte test instead of a call
            body.append("if buf[p] == 0: nt = 0; p += 1")
            body.append("else: nt, p = UV(buf, p)")
            if tagged:
                body.append("for _ in range(nt):")
                body.append("    tg, p = UV(buf, p); sz, p = UV(buf, p); te = p + sz")
                body.append("    if te > end: raise E('tagged field runs past the frame')")
                kw = "if"
                for f in tagged:
                    body.append(f"    {kw} tg == {f.tag}:")
                    body.extend("        " + ln for ln in self.dec_value(f, f"t_{f.name}", "te"))
                    kw = "elif"
                body.append("    p = te")
            else:
                body.append("for _ in range(nt):")
                body.append("    tg, p = UV(buf, p); sz, p = UV(buf, p); p += sz")
                body.append("if p > end: raise E('tagged field runs past the frame')")
        self.src.append(f"def {fn}(buf, p, end):")
        self.src.extend("    " + ln for ln in body)
        self.src.append(f"    return {{{', '.join(out)}}}, p")
        self.src.append("")
        return fn

    def dec_len(self, nullable: bool, what: str) -> list[str]:
        """Lines reading a length into ``n`` (-1 = null); int16 for strings in old versions."""
        if self.flex:
            lines = ["n = buf[p] - 1; p += 1", "if n >= 127: n, p = UV(buf, p - 1); n -= 1"]
        elif what == "string":
            lines = ["n, = I16(buf, p); p += 2"]
        else:
            lines = ["n, = I32(buf, p); p += 4"]
        if not nullable:
            lines.append("if n < 0: raise E('null where the field is not nullable')")
        return lines

    def dec_value(self, f: Field, var: str, end: str) -> list[str]:
        nullable = f.is_nullable(self.version)
        if f.kind == "struct":
            fn = self.decoder(f.fields)
            if nullable:  # a presence byte first: -1 null, 1 present (Kafka's encoding)
                return [
                    f"if buf[p] == 255: {var} = None; p += 1",
                    f"else: {var}, p = {fn}(buf, p + 1, {end})",
                ]
            return [f"{var}, p = {fn}(buf, p, {end})"]
        if f.kind == "prim" and f.type in FIXED_FORMATS:
            st = struct.Struct(">" + FIXED_FORMATS[f.type])
            return [f"{var}, = {self.const(st.unpack_from)}(buf, p); p += {st.size}"]
        if f.kind == "prim" and f.type == "uuid":
            return [
                f"if p + 16 > {end}: raise E('truncated uuid')",
                f"{var} = UUID(bytes=bytes(buf[p:p + 16])); p += 16",
            ]
        if f.kind == "prim":
            convert = {
                "string": "str(buf[p:p + n], 'utf-8')",
                "bytes": "bytes(buf[p:p + n])",
                "records": "buf[p:p + n]",
            }[f.type]
            lines = self.dec_len(nullable, "string" if f.type == "string" else "bytes")
            lines += [
                f"if n < 0: {var} = None",
                "else:",
                f"    if p + n > {end}: raise E('field runs past the frame')",
                f"    {var} = {convert}; p += n",
            ]
            return lines
        # arrays
        lines = self.dec_len(nullable, "array")
        lines += [f"if n < 0: {var} = None", "else:", f"    ALEN(n, p, {end})"]
        if f.kind == "structs":
            fn = self.decoder(f.fields)
            lines += [
                f"    {var} = []; ap = {var}.append",
                "    for _ in range(n):",
                f"        x, p = {fn}(buf, p, {end}); ap(x)",
            ]
        elif f.type in FIXED_FORMATS:
            ch = FIXED_FORMATS[f.type]
            size = struct.calcsize(ch)
            lines += [
                f"    {var} = list(unpack_from('>%d{ch}' % n, buf, p)); p += n * {size}",
            ]
        else:
            elem = Field("x", "prim", f.type)
            lines += [f"    {var} = []; ap = {var}.append", "    for _ in range(n):"]
            lines += ["        " + ln for ln in self.dec_value(elem, "x", end)]
            lines += ["        ap(x)"]
        return lines

    # ---------------------------------------------------------------- encoding

    def encoder(self, fields: list[Field]) -> str:
        fn = self.name("W")
        body = ["g = o.get"]
        tagged: list[Field] = []
        i = 0
        while i < len(fields):
            f = fields[i]
            if not f.exists(self.version):
                i += 1
                continue
            if f.tag is not None:
                if self.flex:
                    tagged.append(f)
                i += 1
                continue
            group = []
            while (
                i < len(fields)
                and fields[i].exists(self.version)
                and fields[i].tag is None
                and fields[i].kind == "prim"
                and fields[i].type in FIXED_FORMATS
            ):
                group.append(fields[i])
                i += 1
            if group:
                st = struct.Struct(">" + "".join(FIXED_FORMATS[g.type] for g in group))
                args = ", ".join(self.get_or_default(g) for g in group)
                body.append(f"b += {self.const(st.pack)}({args})")
                continue
            body.append(f"x = g({f.name!r}, {self.const(f.default_value())})")
            body.extend(self.enc_value(f, "x", "b"))
            i += 1
        if self.flex:
            if not tagged:
                body.append("b.append(0)")
            else:
                body.append("tags = []")
                for f in tagged:
                    k = self.const(f.default_value())
                    body.append(f"x = g({f.name!r})")
                    body.append(f"if x is not None and x != {k}:")
                    body.append("    t = bytearray()")
                    body.extend("    " + ln for ln in self.enc_value(f, "x", "t"))
                    body.append(f"    tags.append(({f.tag}, t))")
                body.append("b += UVE(len(tags))")
                body.append("for tg, t in tags: b += UVE(tg); b += UVE(len(t)); b += t")
        body.append("return b")
        self.src.append(f"def {fn}(o, b, P):")
        self.src.extend("    " + ln for ln in body)
        self.src.append("")
        return fn

    def get_or_default(self, f: Field) -> str:
        d = f.default_value()
        return f"g({f.name!r}, {d!r})" if d else f"g({f.name!r}) or {d!r}"

    def enc_len(self, n: str, what: str, b: str) -> str:
        if self.flex:
            return f"m = {n} + 1; {b}.append(m) if m < 128 else {b}.__iadd__(UVE(m))"
        return f"{b} += {'P16' if what == 'string' else 'P32'}({n})"

    def enc_null(self, what: str, b: str) -> str:
        if self.flex:
            return f"{b}.append(0)"
        return f"{b} += {NULL16 if what == 'string' else NULL32!r}"

    def enc_value(self, f: Field, var: str, b: str) -> list[str]:
        """Lines writing ``var`` (possibly None = absent/null) for field ``f`` into ``b``."""
        nullable = f.is_nullable(self.version)
        if f.kind == "struct":
            fn = self.encoder(f.fields)
            if nullable:
                return [
                    f"if {var} is None: {b}.append(255)",
                    f"else: {b}.append(1); {b} = {fn}({var}, {b}, P)",
                ]
            return [f"{b} = {fn}({var} if {var} is not None else {{}}, {b}, P)"]
        if f.kind == "prim" and f.type in FIXED_FORMATS:
            st = struct.Struct(">" + FIXED_FORMATS[f.type])
            d = f.default_value()
            return [f"{b} += {self.const(st.pack)}({var} if {var} is not None else {d!r})"]
        if f.kind == "prim" and f.type == "uuid":
            return [f"{b} += UB({var})"]
        what = "string" if f.type == "string" else "bytes"
        if f.kind == "prim":
            empty = "" if f.type == "string" else b""
            null = self.enc_null(what, b) if nullable else f"{var} = {empty!r}"
            lines = [f"if {var} is None: {null}"]
            if f.type == "records":
                lines += [
                    "else:",
                    "    " + self.enc_len(f"RLEN({var})", what, b),
                    f"    {b} = RPUT({var}, {b}, P)",
                ]
                return lines
            conv = f"TB({var})" if f.type == "string" else var
            lines += [
                f"if {var} is not None:",
                f"    e = {conv}",
                "    " + self.enc_len("NB(e)", what, b),
                f"    {b} += e",
            ]
            return lines
        # arrays
        null = self.enc_null("array", b) if nullable else f"{var} = ()"
        lines = [f"if {var} is None: {null}", f"if {var} is not None:"]
        lines.append("    " + self.enc_len(f"len({var})", "array", b))
        if f.kind == "structs":
            fn = self.encoder(f.fields)
            lines += [f"    for y in {var}: {b} = {fn}(y, {b}, P)"]
        elif f.type in FIXED_FORMATS:
            ch = FIXED_FORMATS[f.type]
            lines += [f"    {b} += pack('>%d{ch}' % len({var}), *{var})"]
        else:
            elem = Field("y", "prim", f.type)
            lines += [f"    for y in {var}:"]
            lines += ["        " + ln for ln in self.enc_value(elem, "y", b)]
        return lines


def _has_uuid(value: Any) -> bool:
    if isinstance(value, uuid.UUID):
        return True
    if isinstance(value, dict):
        return any(_has_uuid(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_uuid(v) for v in value)
    return False


def _compile(gen: _Gen, entry: str, label: str) -> Any:
    import copy

    gen.ns["_deepcopy"] = copy.deepcopy
    source = "\n".join(gen.src)
    exec(compile(source, f"<edplog.protocol {label}>", "exec"), gen.ns)  # noqa: S102
    fn = gen.ns[entry]
    fn.__edplog_source__ = source
    return fn


def build_decoder(fields: list[Field], version: int, flexible: bool, label: str) -> Decoder:
    """Compile the decoder of one message version."""
    gen = _Gen(version, flexible)
    entry = gen.decoder(fields)
    return cast(Decoder, _compile(gen, entry, label))


def build_encoder(fields: list[Field], version: int, flexible: bool, label: str) -> Encoder:
    """Compile the encoder of one message version."""
    gen = _Gen(version, flexible)
    entry = gen.encoder(fields)
    return cast(Encoder, _compile(gen, entry, label))
