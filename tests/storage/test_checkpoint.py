"""The small durable files of a partition directory: atomic replacement, the checkpoint, the
clean-shutdown marker, and keeping the previous version of a file beside it."""

from __future__ import annotations

import os
import threading

from edplog.storage import checkpoint


def test_checkpoint_round_trips_and_tolerates_garbage(tmp_path):
    checkpoint.write_checkpoint(str(tmp_path), 1234, 17)
    assert checkpoint.read_checkpoint(str(tmp_path)) == {
        "recovery-point": 1234,
        "log-start-offset": 17,
    }
    (tmp_path / checkpoint.CHECKPOINT).write_bytes(b"\xff\xfe not a checkpoint")
    assert checkpoint.read_checkpoint(str(tmp_path)) == {}


def test_clean_shutdown_marker_records_where_the_log_ended(tmp_path):
    d = str(tmp_path)
    assert checkpoint.read_clean_shutdown(d) is None
    checkpoint.write_clean_shutdown(d, checkpoint.CleanShutdown(500, 480, 4096))
    assert checkpoint.read_clean_shutdown(d) == checkpoint.CleanShutdown(500, 480, 4096)
    checkpoint.remove_clean_shutdown(d)
    assert checkpoint.read_clean_shutdown(d) is None
    # A marker from an older version (empty) still says "clean", with unknown fields.
    (tmp_path / checkpoint.CLEAN_SHUTDOWN).write_bytes(b"")
    assert checkpoint.read_clean_shutdown(d) == checkpoint.CleanShutdown()


def test_write_atomically_keeps_the_previous_version(tmp_path):
    path = str(tmp_path / "f.json")
    prev = path + ".prev"
    checkpoint.write_atomically(path, b"one", keep_previous=prev)
    assert not os.path.exists(prev)
    checkpoint.write_atomically(path, b"two", keep_previous=prev)
    assert open(path, "rb").read() == b"two"
    assert open(prev, "rb").read() == b"one"
    checkpoint.write_atomically(path, b"three", keep_previous=prev)
    assert open(prev, "rb").read() == b"two"
    assert sorted(os.listdir(tmp_path)) == ["f.json", "f.json.prev"]


def test_concurrent_writers_of_one_file_never_collide(tmp_path):
    """Every writer has its own temporary name: the file always holds one writer's whole
    content, and no temporary is left behind."""
    path = str(tmp_path / "log.checkpoint")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(200):
                checkpoint.write_checkpoint(str(tmp_path), n * 1000 + i, n)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    values = checkpoint.read_checkpoint(str(tmp_path))
    assert values["recovery-point"] == values["log-start-offset"] * 1000 + 199
    assert os.listdir(tmp_path) == [os.path.basename(path)]
