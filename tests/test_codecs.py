"""The RecordBatch compression codecs (edplog.codecs): what edplog compresses, an independent
implementation (kafka-python's codecs) decompresses, and the other way round; the bounded
streaming decompressors give the same bytes in pieces and refuse what is cut short, followed
by junk, or larger than their bound."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import codec as oracle

from edplog.codecs import CODEC_NAMES, NAMES, codec_id, compress, decompress, stream_decompressor
from edplog.errors import CorruptRecordError, UnsupportedCodecError

ORACLE = {
    "gzip": (oracle.gzip_encode, oracle.gzip_decode),
    "snappy": (lambda b: oracle.snappy_encode(b, xerial_compatible=True), oracle.snappy_decode),
    "lz4": (oracle.lz4_encode, oracle.lz4_decode),
    "zstd": (oracle.zstd_encode, oracle.zstd_decode),
}
payloads = st.one_of(
    st.binary(max_size=4096),
    st.builds(lambda n, b: b * n, st.integers(1, 40_000), st.binary(min_size=1, max_size=8)),
)


@pytest.mark.parametrize("name", list(ORACLE))
@settings(max_examples=40, deadline=None)
@given(data=payloads)
def test_round_trips_with_an_independent_implementation(name, data) -> None:
    encode, decode = ORACLE[name]
    c = codec_id(name)
    if data or name != "snappy":  # kafka-python cannot read Java's header-only empty stream
        assert decode(compress(c, data)) == data
    assert decompress(c, encode(data)) == data
    assert decompress(c, compress(c, data)) == data


@pytest.mark.parametrize("name", list(ORACLE))
@settings(max_examples=20, deadline=None)
@given(data=payloads, piece=st.integers(1, 5000))
def test_streaming_gives_the_same_bytes_in_bounded_pieces(name, data, piece) -> None:
    stream = stream_decompressor(codec_id(name), compress(codec_id(name), data), 1 << 30)
    out = bytearray()
    # A snappy block comes whole (at most the 32 KiB a xerial block holds).
    most = max(piece, 32 * 1024) if name == "snappy" else piece
    while True:
        chunk = stream.read(piece)
        if not chunk:
            break
        assert len(chunk) <= most
        out += chunk
    assert bytes(out) == data


@pytest.mark.parametrize("name", list(ORACLE))
def test_truncated_streams_junk_after_them_and_bounds_are_refused(name) -> None:
    c = codec_id(name)
    packed = compress(c, bytes(range(256)) * 64)
    for bad in (packed[: len(packed) // 2], packed + b"junk"):
        with pytest.raises(CorruptRecordError):
            stream = stream_decompressor(c, bad, 1 << 30)
            while stream.read(4096):
                pass
    with pytest.raises(CorruptRecordError, match="allowed"):
        stream = stream_decompressor(c, packed, 1000)
        while stream.read(4096):
            pass


def test_codec_names_and_numbers_are_kafkas() -> None:
    assert NAMES == {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
    assert CODEC_NAMES[4] == "zstd" and codec_id("ZSTD") == 4 and codec_id(None) == 0
    with pytest.raises(UnsupportedCodecError):
        codec_id("brotli")
    with pytest.raises(UnsupportedCodecError):
        compress(7, b"x")
