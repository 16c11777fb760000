"""The consumer-group records in __consumer_offsets, byte for byte in Kafka's layouts
(key: type int16 then int16-length strings; value: version int16 then flexible fields), and
read back by the replay."""

from __future__ import annotations

import struct
import uuid

from edplog.group.consumer_records import Replay, group_records
from edplog.group.consumer_state import ConsumerGroup, ConsumerMember, MemberState

TID = uuid.UUID(int=7)


def _c(text: str | None) -> bytes:
    return b"\x00" if text is None else bytes([len(text) + 1]) + text.encode()


def _group() -> ConsumerGroup:
    g = ConsumerGroup("g", group_epoch=4, assignment_epoch=4)
    m = ConsumerMember(
        "m",
        instance_id="i",
        client_id="c",
        client_host="/h",
        rebalance_timeout_ms=300,
        subscribed_topic_names=["t"],
        server_assignor="range",
        member_epoch=4,
        previous_member_epoch=3,
        state=MemberState.UNREVOKED_PARTITIONS,
        assigned={TID: {0}},
        pending_revocation={TID: {1}},
    )
    g.members["m"] = m
    g.target["m"] = {TID: {0}}
    return g


def test_records_have_kafkas_layouts() -> None:
    """Keys 5, 7, 8, 6, 3 in that order; each value's fields in the order of Kafka's
    ConsumerGroup*Value schemas."""
    recs = dict(group_records(_group(), ["m"]))
    key = struct.pack(">h", 5) + b"\x00\x01g\x00\x01m"
    meta = (
        b"\x00\x00"
        + _c("i")
        + _c(None)
        + _c("c")
        + _c("/h")
        + b"\x02"
        + _c("t")
        + _c(None)
        + struct.pack(">i", 300)
        + _c("range")
        + b"\x00"
    )
    assert recs[key] == meta
    tps = lambda p: b"\x02" + TID.bytes + b"\x02" + struct.pack(">i", p) + b"\x00"  # noqa: E731
    current_key = struct.pack(">h", 8) + b"\x00\x01g\x00\x01m"
    current = b"\x00\x00" + struct.pack(">ii", 4, 3) + b"\x01" + tps(0) + tps(1) + b"\x00"
    assert recs[current_key] == current
    assert recs[struct.pack(">h", 7) + b"\x00\x01g\x00\x01m"] == b"\x00\x00" + tps(0) + b"\x00"
    assert recs[struct.pack(">h", 3) + b"\x00\x01g"] == b"\x00\x00" + struct.pack(">i", 4) + b"\x00"
    assert recs[struct.pack(">h", 6) + b"\x00\x01g"] == b"\x00\x00" + struct.pack(">i", 4) + b"\x00"


def test_replay_rebuilds_the_group_and_honours_tombstones() -> None:
    """Replaying the records gives the same group; a later tombstone of the member removes it."""
    replay = Replay()
    for k, v in group_records(_group(), ["m"]):
        assert replay.apply(k, v)
    g = replay.groups(now=1.0)["g"]
    m = g.members["m"]
    assert (g.group_epoch, m.member_epoch, m.previous_member_epoch) == (4, 4, 3)
    assert m.state is MemberState.UNREVOKED_PARTITIONS
    assert (m.assigned, m.pending_revocation) == ({TID: {0}}, {TID: {1}})
    assert (m.server_assignor, m.rebalance_timeout_ms, m.instance_id) == ("range", 300, "i")
    gone = ConsumerGroup("g", group_epoch=5, assignment_epoch=5)
    for k, v in group_records(gone, ["m"]):
        replay.apply(k, v)
    g = replay.groups(now=1.0)["g"]
    assert g.group_epoch == 5 and g.members == {}
    assert not replay.apply(struct.pack(">h", 1) + b"\x00\x01g", None)  # an offset key
