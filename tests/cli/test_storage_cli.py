"""`edplog dump` and `edplog verify` through the real command line."""

from __future__ import annotations

import os
import subprocess
import sys

import edplog


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edplog", *args], capture_output=True, text=True, timeout=60
    )


def make_store(path: str) -> str:
    with edplog.Store(path) as store:
        store.create_topic("t", 2)
        log = store.log("t", 0)
        for i in range(3000):
            log.append(b"value-%d" % i, key=b"k%d" % (i % 5), headers=[("h", b"x")])
            if i % 1000 == 999:
                log.roll()
    return os.path.join(path, "t-0")


def test_verify_passes_a_clean_store(tmp_path) -> None:
    make_store(str(tmp_path))
    out = run("verify", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 problems" in out.stderr


def test_verify_names_file_and_position_of_a_flipped_byte(tmp_path) -> None:
    partition = make_store(str(tmp_path))
    segment = os.path.join(partition, f"{1000:020d}.log")
    with open(segment, "r+b") as f:
        f.seek(500)
        byte = f.read(1)
        f.seek(500)
        f.write(bytes([byte[0] ^ 0x40]))
    out = run("verify", str(tmp_path))
    assert out.returncode == 1
    assert f"DAMAGED {segment} at position" in out.stdout
    assert "CRC mismatch" in out.stdout


def test_verify_reports_a_stale_index_entry(tmp_path) -> None:
    partition = make_store(str(tmp_path))
    index = os.path.join(partition, f"{0:020d}.index")
    with open(index, "ab") as f:
        f.write((999).to_bytes(4, "big") + (1).to_bytes(4, "big"))
    out = run("verify", partition)
    assert out.returncode == 1
    assert index in out.stdout


def test_verify_reports_a_partial_tail_batch(tmp_path) -> None:
    partition = make_store(str(tmp_path))
    segment = os.path.join(partition, f"{2000:020d}.log")
    with open(segment, "ab") as f:
        f.write(b"\x00" * 30)
    out = run("verify", segment)
    assert out.returncode == 1
    assert "partial batch" in out.stdout


def test_dump_prints_batches_and_records(tmp_path) -> None:
    partition = make_store(str(tmp_path))
    out = run("dump", "--records", os.path.join(partition, f"{0:020d}.log"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1].startswith("baseOffset: 0 lastOffset: 999 count: 1000 position: 0")
    assert "| offset: 0 " in out.stdout and "key: k0 value: value-0 headers: [h=x]" in out.stdout
    assert sum(line.startswith("| offset:") for line in lines) == 1000


def test_dump_of_an_index_lists_offsets_and_positions(tmp_path) -> None:
    partition = make_store(str(tmp_path))
    with edplog.Log(partition, index_interval_bytes=0) as log:
        for _ in range(3):
            log.append(b"x" * 10)
            log.flush()
    out = run("dump", os.path.join(partition, f"{3000:020d}.index"))
    assert out.returncode == 0, out.stderr
    assert "offset: 3001 position:" in out.stdout


def _records_section(batch: bytes, section: bytes) -> bytes:
    out = bytearray(batch[:61] + section)
    out[8:12] = (len(out) - 12).to_bytes(4, "big")
    out[17:21] = edplog._native.crc32c(bytes(out[21:])).to_bytes(4, "big")
    return bytes(out)


def test_verify_finds_a_missing_segment_and_a_stray_index(tmp_path) -> None:
    partition = make_store(str(tmp_path))
    os.unlink(os.path.join(partition, f"{1000:020d}.log"))  # its index files stay
    out = run("verify", partition)
    assert out.returncode == 1
    assert f"{1000:020d}.log: missing (its index files remain)" in out.stdout
    assert "offsets are missing (a lost segment)" in out.stdout


def test_verify_finds_a_truncated_or_misaligned_index(tmp_path) -> None:
    partition = make_store(str(tmp_path))
    index = os.path.join(partition, f"{0:020d}.index")
    with open(index, "ab") as f:
        f.write(b"\x00\x00\x00")
    out = run("verify", partition)
    assert out.returncode == 1
    assert "not a whole number of 8-byte entries" in out.stdout


def test_verify_finds_garbage_inside_a_compressed_batch(tmp_path) -> None:
    """A zstd batch whose CRC is right but whose records are not (written to the file as a
    disk or a tool might leave it: the broker would refuse it)."""
    from edplog.codecs import ZSTD, compress
    from edplog.records import build_batch

    partition = make_store(str(tmp_path))
    segment = os.path.join(partition, f"{3000:020d}.log")  # the active segment, empty
    bad = bytearray(
        _records_section(build_batch([(b"k", b"v")], "zstd"), compress(ZSTD, bytes(50)))
    )
    bad[0:8] = (3000).to_bytes(8, "big")
    with open(segment, "ab") as f:
        f.write(bad)
    out = run("verify", segment)
    assert out.returncode == 1
    assert "batch at offset 3000" in out.stdout and "record 0 of 1" in out.stdout


def test_verify_finds_bytes_past_a_clean_shutdown_and_an_unusable_topics_file(tmp_path) -> None:
    partition = make_store(str(tmp_path))
    with open(os.path.join(partition, f"{3000:020d}.log"), "ab") as f:  # the active segment
        f.write(b"\x00" * 100)
    with open(os.path.join(tmp_path, "topics.json"), "w") as f:
        f.write("{")
    out = run("verify", str(tmp_path))
    assert out.returncode == 1
    assert "past the end recorded at the last clean shutdown" in out.stdout
    assert "topics.json: unusable" in out.stdout
