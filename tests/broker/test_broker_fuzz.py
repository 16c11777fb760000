"""Fuzzing the request path: random and mutated frames never crash the broker, never log an
unexpected error, and never disturb a well-behaved client on another connection."""

from __future__ import annotations

import logging
import socket
import struct

from broker_helpers import RawClient, batch, fetch_body, produce_body
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edplog.protocol import encode_request

SEEDS = [
    encode_request(18, 3, 1, "f", {"client_software_name": "f", "client_software_version": "1"}),
    encode_request(
        3,
        12,
        2,
        "f",
        {
            "topics": [{"topic_id": None, "name": "fz"}],
            "allow_auto_topic_creation": True,
            "include_topic_authorized_operations": False,
        },
    ),
    encode_request(0, 9, 3, "f", produce_body("fz", 0, batch([b"a", b"b"]))),
    encode_request(0, 7, 4, "f", produce_body("fz", 0, batch([b"c"]))),
    encode_request(1, 12, 5, "f", fetch_body("fz", 0, 0)),
    encode_request(1, 11, 6, "f", fetch_body("fz", 0, 0)),
]


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "flip", "truncate", "resize"]))
    if kind == "random":
        body = draw(st.binary(min_size=0, max_size=200))
        return struct.pack(">i", len(body)) + body
    seed = bytearray(draw(st.sampled_from(SEEDS)))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(4, len(seed) - 1))
            seed[i] = draw(st.integers(0, 255))
        return bytes(seed)
    if kind == "truncate":
        cut = draw(st.integers(4, len(seed) - 1))
        body = seed[4:cut]
        return struct.pack(">i", len(body)) + bytes(body)
    # a lying size prefix: the broker must wait or close, never read past the frame
    return struct.pack(">i", draw(st.integers(-10, len(seed) + 10))) + bytes(seed[4:])


def test_fuzzed_frames_never_hurt_the_broker(kafka_broker: str, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="edplog.broker")
    host, port = kafka_broker.rsplit(":", 1)
    with RawClient(kafka_broker) as good:

        @settings(
            max_examples=150,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(frames())
        def run(frame: bytes) -> None:
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(frame)
                s.shutdown(socket.SHUT_WR)
                for _ in range(64):  # read whatever comes until the broker closes
                    if not s.recv(65536):
                        break
            assert good.call(18, 0, {})["error_code"] == 0

        run()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
