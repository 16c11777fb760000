"""Codec hot paths beside kafka-python's codec, in one run: decode a Produce v9 request and
encode a Fetch v12 response, 4 partitions of 1 KiB records each.

Run: python -m pytest bench/bench_protocol.py --benchmark-only
"""

from __future__ import annotations

import tempfile

import pytest
from kafka.protocol.consumer import FetchResponse
from kafka.protocol.producer import ProduceRequest

from edplog.protocol import (
    FileRegion,
    decode_request,
    encode_request,
    encode_response,
    read_request_header,
)

RECORDS = bytes(1024)
PARTITIONS = 4


def _produce_body() -> dict:
    return {
        "transactional_id": None,
        "acks": -1,
        "timeout_ms": 30000,
        "topic_data": [
            {
                "name": "bench",
                "partition_data": [{"index": i, "records": RECORDS} for i in range(PARTITIONS)],
            }
        ],
    }


def _fetch_body(records: object) -> dict:
    return {
        "throttle_time_ms": 0,
        "error_code": 0,
        "session_id": 0,
        "responses": [
            {
                "topic": "bench",
                "partitions": [
                    {
                        "partition_index": i,
                        "error_code": 0,
                        "high_watermark": 1000,
                        "last_stable_offset": 1000,
                        "log_start_offset": 0,
                        "aborted_transactions": None,
                        "preferred_read_replica": -1,
                        "records": records,
                    }
                    for i in range(PARTITIONS)
                ],
            }
        ],
    }


FRAME = encode_request(0, 9, 1, "bench", _produce_body())[4:]


@pytest.mark.benchmark(group="decode Produce v9, 4 partitions")
def test_edplog_decode_produce_v9(benchmark) -> None:
    mv = memoryview(FRAME)

    def run() -> dict:
        hdr = read_request_header(mv)
        return decode_request(0, 9, mv, hdr.body_offset)

    body = benchmark(run)
    assert len(body["topic_data"][0]["partition_data"]) == PARTITIONS
    benchmark.extra_info["requests_per_s"] = 1 / benchmark.stats.stats.mean


@pytest.mark.benchmark(group="decode Produce v9, 4 partitions")
def test_kafka_python_decode_produce_v9(benchmark) -> None:
    req = benchmark(ProduceRequest.decode, FRAME, version=9, header=True)
    assert len(req.topic_data[0].partition_data) == PARTITIONS
    benchmark.extra_info["requests_per_s"] = 1 / benchmark.stats.stats.mean


@pytest.mark.benchmark(group="encode Fetch v12, 4 partitions")
def test_edplog_encode_fetch_v12_file_regions(benchmark) -> None:
    with tempfile.TemporaryFile() as f:
        f.write(RECORDS)
        f.flush()
        region = [FileRegion(f, 0, len(RECORDS))]
        parts, total = benchmark(lambda: encode_response(1, 12, 7, _fetch_body(region)))
    assert total > PARTITIONS * len(RECORDS)
    benchmark.extra_info["responses_per_s"] = 1 / benchmark.stats.stats.mean


@pytest.mark.benchmark(group="encode Fetch v12, 4 partitions")
def test_edplog_encode_fetch_v12_bytes(benchmark) -> None:
    parts, total = benchmark(lambda: encode_response(1, 12, 7, _fetch_body(RECORDS)))
    assert total > PARTITIONS * len(RECORDS)
    benchmark.extra_info["responses_per_s"] = 1 / benchmark.stats.stats.mean


@pytest.mark.benchmark(group="encode Fetch v12, 4 partitions")
def test_kafka_python_encode_fetch_v12(benchmark) -> None:
    def run() -> bytes:
        body = _fetch_body(RECORDS)
        topic = body["responses"][0]
        resp = FetchResponse(
            version=12,
            throttle_time_ms=0,
            error_code=0,
            session_id=0,
            responses=[
                FetchResponse.FetchableTopicResponse(
                    version=12,
                    topic=topic["topic"],
                    partitions=[
                        FetchResponse.FetchableTopicResponse.PartitionData(version=12, **p)
                        for p in topic["partitions"]
                    ],
                )
            ],
        )
        return resp.encode(version=12)

    data = benchmark(run)
    assert len(data) > PARTITIONS * len(RECORDS)
    benchmark.extra_info["responses_per_s"] = 1 / benchmark.stats.stats.mean
