"""Produce throughput over a PLAINTEXT and an SSL listener of the same broker, the same
client (confluent-kafka, acks=1, 1 KiB values by default), run pairs side by side.

One ``python -m edplog broker`` child process serves both listeners; each run produces
``--records`` values to a new topic and waits for every acknowledgement. The ratio is of
run pairs (SSL / PLAINTEXT); issue 11's goal is >= 0.7x at 1 KiB.

Run: python bench/bench_tls_produce.py [--records 200000] [--size 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_tls_fetch import free_port, make_certificate, start_broker


def produce_run(conf: dict[str, object], topic: str, records: int, value: bytes) -> float:
    """Value bytes/s of ``records`` produces, from the first send to the last acknowledgement."""
    from confluent_kafka import Producer

    producer = Producer(conf)
    producer.list_topics(timeout=10)  # connected before the clock starts
    start = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:  # the client's queue is full: let it drain
                producer.poll(0.01)
    if producer.flush(120) != 0:
        raise RuntimeError("records left unacknowledged")
    return records * len(value) / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=1024, help="value size in bytes")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    value = os.urandom(args.size // 2 + 1).hex().encode()[: args.size]
    with tempfile.TemporaryDirectory(prefix="edplog-bench-tls-produce-") as tmp:
        keystore, truststore = make_certificate(Path(tmp))
        plain_port, tls_port = free_port(), free_port()
        config = Path(tmp) / "server.properties"
        config.write_text(
            f"listeners=PLAINTEXT://127.0.0.1:{plain_port},SSL://127.0.0.1:{tls_port}\n"
            f"ssl.keystore.type=PEM\nssl.keystore.location={keystore}\n"
        )
        common = {"linger.ms": 5, "batch.size": 1 << 20, "acks": 1}
        plain_conf = {**common, "bootstrap.servers": f"127.0.0.1:{plain_port}"}
        tls_conf = {
            **common,
            "bootstrap.servers": f"127.0.0.1:{tls_port}",
            "security.protocol": "SSL",
            "ssl.ca.location": str(truststore),
        }
        proc = start_broker(os.path.join(tmp, "data"), config)
        try:
            plain, over_tls = [], []
            for run in range(args.runs):
                plain.append(produce_run(plain_conf, f"plain-{run}", args.records, value))
                over_tls.append(produce_run(tls_conf, f"tls-{run}", args.records, value))
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    ratios = [t / p for t, p in zip(over_tls, plain, strict=True)]
    print(f"{args.records} records of {args.size} B, acks=1, confluent-kafka")
    for label, runs in (("PLAINTEXT", plain), ("SSL", over_tls)):
        print(
            f"{label:9}: {statistics.median(runs) / 1e6:.0f} MB/s "
            f"({min(runs) / 1e6:.0f}-{max(runs) / 1e6:.0f})"
        )
    print(
        f"ratio    : {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}), "
        "goal >= 0.7x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
