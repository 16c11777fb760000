"""Consumer-group records in ``__consumer_offsets``: Kafka's KIP-848 record types.

A consumer group's state is a set of compacted records beside the committed offsets, keyed so
that the last record per key is the truth (a null value deletes):

==== ===================================== =============================================
type key fields                            value (version 0, flexible encoding)
==== ===================================== =============================================
3    group                                 group epoch
5    group, member                         instance id, rack id, client id, client host,
                                           subscribed topic names, subscribed regex,
                                           rebalance timeout, server assignor
6    group                                 target assignment epoch
7    group, member                         target assignment (topic id, partitions)
8    group, member                         member epoch, previous member epoch, state,
                                           assigned partitions, partitions pending revocation
==== ===================================== =============================================

A key is ``type:int16`` then its strings (int16 length, as the offset-commit key); a value is
``version:int16`` then the fields in Kafka's flexible encoding (unsigned-varint lengths plus
one, a tagged-field count at the end). On start these are replayed after the offsets, so a
restarted coordinator knows every group's epoch, target and members: members come back with
their epochs, and their session timers start again from the restart.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from typing import Any

from .consumer_state import ConsumerGroup, ConsumerMember, MemberState

GROUP_METADATA = 3
MEMBER_METADATA = 5
TARGET_METADATA = 6
TARGET_MEMBER = 7
CURRENT_ASSIGNMENT = 8
RECORD_TYPES = frozenset(
    (GROUP_METADATA, MEMBER_METADATA, TARGET_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT)
)

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_STATE_CODES = {
    MemberState.STABLE: 0,
    MemberState.UNREVOKED_PARTITIONS: 1,
    MemberState.UNRELEASED_PARTITIONS: 2,
}
_STATES = {v: k for k, v in _STATE_CODES.items()}

Record = tuple[bytes, bytes | None]


# ---------------------------------------------------------------------- encoding


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _cstr(text: str | None) -> bytes:
    if text is None:
        return b"\x00"
    raw = text.encode()
    return _uvarint(len(raw) + 1) + raw


def _tps(assignment: dict[uuid.UUID, set[int]]) -> bytes:
    out = bytearray(_uvarint(len(assignment) + 1))
    for tid in sorted(assignment, key=str):
        parts = sorted(assignment[tid])
        out += tid.bytes + _uvarint(len(parts) + 1)
        for p in parts:
            out += _I32.pack(p)
        out += b"\x00"
    return bytes(out)


def key(record_type: int, *fields: str) -> bytes:
    out = bytearray(_I16.pack(record_type))
    for text in fields:
        raw = text.encode()
        out += _I16.pack(len(raw)) + raw
    return bytes(out)


def _value(body: bytes) -> bytes:
    return _I16.pack(0) + body + b"\x00"


def group_records(group: ConsumerGroup, member_ids: list[str]) -> list[Record]:
    """The records that make ``group`` and the named members durable (null values for the
    named members that are gone)."""
    gid = group.group_id
    out: list[Record] = []
    for mid in member_ids:
        member = group.members.get(mid)
        if member is None:
            out += [(key(t, gid, mid), None) for t in (CURRENT_ASSIGNMENT, TARGET_MEMBER)]
            out.append((key(MEMBER_METADATA, gid, mid), None))
            continue
        names = b"".join(_cstr(n) for n in member.subscribed_topic_names)
        metadata = (
            _cstr(member.instance_id)
            + _cstr(member.rack_id)
            + _cstr(member.client_id)
            + _cstr(member.client_host)
            + _uvarint(len(member.subscribed_topic_names) + 1)
            + names
            + _cstr(member.subscribed_topic_regex)
            + _I32.pack(member.rebalance_timeout_ms)
            + _cstr(member.server_assignor)
        )
        out.append((key(MEMBER_METADATA, gid, mid), _value(metadata)))
        out.append((key(TARGET_MEMBER, gid, mid), _value(_tps(group.target.get(mid, {})))))
        current = (
            _I32.pack(member.member_epoch)
            + _I32.pack(member.previous_member_epoch)
            + bytes([_STATE_CODES[member.state]])
            + _tps(member.assigned)
            + _tps(member.pending_revocation)
        )
        out.append((key(CURRENT_ASSIGNMENT, gid, mid), _value(current)))
    out.append((key(TARGET_METADATA, gid), _value(_I32.pack(group.assignment_epoch))))
    out.append((key(GROUP_METADATA, gid), _value(_I32.pack(group.group_epoch))))
    return out


def delete_records(group: ConsumerGroup) -> list[Record]:
    """Tombstones for an (empty) group: its target metadata and then its epoch."""
    return [
        (key(TARGET_METADATA, group.group_id), None),
        (key(GROUP_METADATA, group.group_id), None),
    ]


# ---------------------------------------------------------------------- decoding


class _Reader:
    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf, self.pos = buf, pos

    def i16(self) -> int:
        (v,) = _I16.unpack_from(self.buf, self.pos)
        self.pos += 2
        return int(v)

    def i32(self) -> int:
        (v,) = _I32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(v)

    def i8(self) -> int:
        v = self.buf[self.pos]
        self.pos += 1
        return v - 256 if v > 127 else v

    def uvarint(self) -> int:
        shift = n = 0
        while True:
            b = self.buf[self.pos]
            self.pos += 1
            n |= (b & 0x7F) << shift
            if b < 0x80:
                return n
            shift += 7
            if shift > 28:
                raise ValueError("varint too long")

    def string(self) -> str:
        n = self.i16()
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError(f"bad string length {n}")
        text = self.buf[self.pos : self.pos + n].decode()
        self.pos += n
        return text

    def cstr(self) -> str | None:
        n = self.uvarint()
        if n == 0:
            return None
        if self.pos + n - 1 > len(self.buf):
            raise ValueError("string runs past the record")
        text = self.buf[self.pos : self.pos + n - 1].decode()
        self.pos += n - 1
        return text

    def count(self) -> int:
        n = self.uvarint() - 1
        if n < 0 or n > len(self.buf):
            raise ValueError(f"bad array length {n}")
        return n

    def tps(self) -> dict[uuid.UUID, set[int]]:
        out: dict[uuid.UUID, set[int]] = {}
        for _ in range(self.count()):
            tid = uuid.UUID(bytes=bytes(self.buf[self.pos : self.pos + 16]))
            self.pos += 16
            out[tid] = {self.i32() for _ in range(self.count())}
            self.skip_tags()
        return out

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()


@dataclass
class _Pending:
    """Per (group, member) pieces seen during replay, put together at the end."""

    metadata: dict[str, Any] | None = None
    target: dict[uuid.UUID, set[int]] | None = None
    current: tuple[int, int, int, dict[uuid.UUID, set[int]], dict[uuid.UUID, set[int]]] | None = (
        None
    )


class Replay:
    """Rebuilds consumer groups from records in log order (last record per key wins)."""

    def __init__(self) -> None:
        self.epochs: dict[str, int] = {}
        self.assignment_epochs: dict[str, int] = {}
        self.members: dict[tuple[str, str], _Pending] = {}

    def apply(self, raw_key: bytes, raw_value: bytes | None) -> bool:
        """Take one record; False when it is not a consumer-group record."""
        r = _Reader(raw_key)
        record_type = r.i16()
        if record_type not in RECORD_TYPES:
            return False
        group_id = r.string()
        member_id = (
            r.string()
            if record_type in (MEMBER_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT)
            else ""
        )
        if record_type == GROUP_METADATA:
            if raw_value is None:
                self.epochs.pop(group_id, None)
            else:
                self.epochs[group_id] = _Reader(raw_value, 2).i32()
            return True
        if record_type == TARGET_METADATA:
            if raw_value is None:
                self.assignment_epochs.pop(group_id, None)
            else:
                self.assignment_epochs[group_id] = _Reader(raw_value, 2).i32()
            return True
        slot = (group_id, member_id)
        if raw_value is None:
            pending = self.members.get(slot)
            if pending is not None:
                if record_type == MEMBER_METADATA:
                    pending.metadata = None
                elif record_type == TARGET_MEMBER:
                    pending.target = None
                else:
                    pending.current = None
            return True
        pending = self.members.setdefault(slot, _Pending())
        v = _Reader(raw_value, 2)
        if record_type == MEMBER_METADATA:
            pending.metadata = {
                "instance_id": v.cstr(),
                "rack_id": v.cstr(),
                "client_id": v.cstr() or "",
                "client_host": v.cstr() or "",
                "subscribed_topic_names": [v.cstr() or "" for _ in range(v.count())],
                "subscribed_topic_regex": v.cstr(),
                "rebalance_timeout_ms": v.i32(),
                "server_assignor": v.cstr(),
            }
        elif record_type == TARGET_MEMBER:
            pending.target = v.tps()
        else:
            pending.current = (v.i32(), v.i32(), v.i8(), v.tps(), v.tps())
        return True

    def groups(self, now: float) -> dict[str, ConsumerGroup]:
        """The rebuilt groups; a member counts only with its metadata record present."""
        out: dict[str, ConsumerGroup] = {}
        for group_id, epoch in self.epochs.items():
            out[group_id] = ConsumerGroup(
                group_id,
                group_epoch=epoch,
                assignment_epoch=self.assignment_epochs.get(group_id, epoch),
            )
        for (group_id, member_id), pending in self.members.items():
            group = out.get(group_id)
            if group is None or pending.metadata is None:
                continue
            member = ConsumerMember(member_id, last_heartbeat=now, **pending.metadata)
            if pending.current is not None:
                epoch, previous, state, assigned, revoking = pending.current
                member.member_epoch, member.previous_member_epoch = epoch, previous
                member.state = _STATES.get(state, MemberState.STABLE)
                member.assigned, member.pending_revocation = assigned, revoking
            group.members[member_id] = member
            group.target[member_id] = pending.target or {}
            if member.instance_id is not None:
                group.static_members[member.instance_id] = member_id
        return out


__all__ = ["RECORD_TYPES", "Replay", "delete_records", "group_records", "key"]
