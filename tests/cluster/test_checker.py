"""The fault campaign's checker (tests/cluster/checker.py) on crafted histories: each anomaly
alone, a clean history, and a real workload's history against one broker."""

from __future__ import annotations

import json

import checker
import pytest


def send(process, seq, partition, offset, outcome="ok", t=0.0):
    """An invoke and its completion for value p<process>-<seq>."""
    value = f"p{process}-{seq}"
    done = {
        "time": t + 0.01,
        "process": process,
        "type": outcome,
        "f": "send",
        "partition": partition,
        "value": value,
    }
    if outcome == "ok":
        done["offset"] = offset
    invoke = {
        "time": t,
        "process": process,
        "type": "invoke",
        "f": "send",
        "partition": partition,
        "value": value,
    }
    return [invoke, done]


def read(partition, offset, value, f="final-read", process="final"):
    return {
        "time": 100.0,
        "process": process,
        "type": "ok",
        "f": f,
        "partition": partition,
        "offset": offset,
        "value": value,
    }


def clean_history():
    history = []
    for seq in range(5):
        history += send(0, seq, 0, seq)
        history += send(1, seq, 1, seq)
    history += [read(0, o, f"p0-{o}", f="poll", process="c") for o in range(5)]
    history += [read(0, o, f"p0-{o}") for o in range(5)]
    history += [read(1, o, f"p1-{o}") for o in range(5)]
    return history


def test_clean_history_is_valid():
    """Ten acknowledged sends on two partitions, a contiguous poll and a final read of all
    of them: no anomaly is reported and the send counts are exact."""
    result = checker.check(clean_history())
    assert result.valid
    assert all(count == 0 for count in result.counts.values())
    assert result.sends == {"invoke": 10, "ok": 10, "fail": 0, "info": 0}
    assert result.final_read_records == 10
    assert result.partitions == [0, 1]


def test_history_without_final_read_is_not_valid():
    """Sends alone cannot show that nothing was lost: the result is not valid."""
    history = send(0, 0, 0, 0)
    result = checker.check(history)
    assert not result.valid
    assert result.counts["lost"] == 0


def test_lost_acknowledged_write():
    """An acknowledged send (p0-2 at offset 2) that the final read lacks is one lost write,
    with its value and offset as the example."""
    history = [r for r in clean_history() if r.get("value") != "p0-2" or r["f"] == "send"]
    result = checker.check(history)
    assert result.counts["lost"] == 1
    assert result.examples["lost"][0] == {"partition": 0, "value": "p0-2", "offset": 2}
    assert not result.valid


def test_inconsistent_offsets():
    """The acknowledgement says offset 3 holds p0-3, the final read has p9-9 there: an
    inconsistent offset (and p0-3 is lost, p9-9 a phantom)."""
    history = [r for r in clean_history() if not (r["f"] == "final-read" and r["value"] == "p0-3")]
    history.append(read(0, 3, "p9-9"))
    result = checker.check(history)
    assert result.counts["inconsistent"] == 1
    assert result.examples["inconsistent"][0] == {
        "partition": 0,
        "offset": 3,
        "values": ["p0-3", "p9-9"],
    }
    assert result.counts["lost"] == 1
    assert result.counts["phantom_read"] == 1


def test_duplicate_value_at_two_offsets():
    """p1-4 stored twice (offsets 4 and 5 in the final read): one duplicate; nothing else."""
    history = clean_history() + [read(1, 5, "p1-4")]
    result = checker.check(history)
    assert result.counts["duplicate"] == 1
    assert result.examples["duplicate"][0] == {"partition": 1, "value": "p1-4", "offsets": [4, 5]}
    assert result.counts["inconsistent"] == 0
    assert result.counts["lost"] == 0


def test_aborted_read_of_a_failed_send():
    """A send that definitely failed (type fail) but whose value the final read holds is an
    aborted read; an indeterminate (info) send read back is not, and is counted as
    recovered."""
    history = clean_history()
    history += send(2, 0, 0, None, outcome="fail")
    history += send(3, 0, 0, None, outcome="info")
    history += [read(0, 5, "p2-0"), read(0, 6, "p3-0")]
    result = checker.check(history)
    assert result.counts["aborted_read"] == 1
    assert result.examples["aborted_read"][0]["value"] == "p2-0"
    assert result.info_recovered == 1
    assert result.sends["fail"] == 1 and result.sends["info"] == 1


def test_poll_skipping_an_offset():
    """A consumer that polled offsets 0, 1, then 3 skipped offset 2, which the final read
    holds: one skipped poll naming offset 2."""
    history = [r for r in clean_history() if not (r["f"] == "poll" and r["offset"] in (2, 4))]
    result = checker.check(history)
    assert result.counts["skipped_poll"] == 1
    assert result.examples["skipped_poll"][0]["skipped"] == [2]
    assert result.counts["nonmonotonic_poll"] == 0


def test_poll_going_backwards():
    """A consumer that polled offset 4 and then offset 1 again went backwards."""
    history = clean_history() + [read(0, 1, "p0-1", f="poll", process="c")]
    result = checker.check(history)
    assert result.counts["nonmonotonic_poll"] == 1
    assert result.examples["nonmonotonic_poll"][0]["offsets"] == [4, 1]


def test_polled_record_later_truncated():
    """A poll returned p5-0 at offset 5, but the final read ends at offset 4: the consumer
    read data that was cut away."""
    history = clean_history() + send(5, 0, 0, 5) + [read(0, 5, "p5-0", f="poll", process="c")]
    result = checker.check(history)
    assert result.counts["read_then_truncated"] == 1
    assert result.counts["lost"] == 1  # the acknowledgement of p5-0 is gone too


def test_nonmonotonic_send_order():
    """One producer's p0-1 acknowledged at a lower offset than its earlier p0-0: the order
    idempotence keeps is broken."""
    history = send(0, 0, 0, 1) + send(0, 1, 0, 0)
    history += [read(0, 0, "p0-1"), read(0, 1, "p0-0")]
    result = checker.check(history)
    assert result.counts["nonmonotonic_send"] == 1
    assert result.counts["lost"] == 0


def test_history_file_round_trip(tmp_path):
    """A history written as JSONL (with a nemesis event the checker ignores) reads back and
    checks the same as in memory."""
    path = tmp_path / "history.jsonl"
    history = clean_history()
    history.insert(
        3, {"time": 1.0, "process": "nemesis", "type": "info", "f": "nemesis", "value": "kill 2"}
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in history) + "\n")
    result = checker.check_file(path)
    assert result.valid
    assert result.summary()["anomalies"] == dict.fromkeys(checker.ANOMALIES, 0)


@pytest.mark.clients
def test_workload_history_against_one_broker_is_clean(kafka_broker, tmp_path):
    """Two idempotent acks=all producers and a poller run against one real broker (no
    faults) for a bounded number of sends; the final read finds every acknowledged value
    exactly once at its acknowledged offset and every poll contiguous."""
    import workload

    topic = "checked"
    workload.create_topic(kafka_broker, topic, partitions=3, replication_factor=1)
    history_path = tmp_path / "history.jsonl"
    with workload.History(history_path) as history:
        run = workload.Workload(
            kafka_broker,
            topic,
            history,
            producers=2,
            max_sends=300,
            max_seconds=30,
            pollers=1,
        )
        run.start()
        run.join(60)
        workload.final_read(kafka_broker, topic, history, timeout_s=30)
    result = checker.check_file(history_path)
    assert result.valid, result.summary()
    assert result.sends["ok"] == 600
    assert result.final_read_records == 600


def test_incomplete_final_read_is_not_valid():
    """A final read that could not reach a partition's end (logged as a failed final read)
    leaves loss unproven: the history is not valid though no anomaly is counted."""
    history = clean_history() + [
        {
            "time": 101.0,
            "process": "final",
            "type": "fail",
            "f": "final-read",
            "partition": 1,
            "value": None,
        }
    ]
    result = checker.check(history)
    assert result.incomplete_final_read == [1]
    assert not result.valid
