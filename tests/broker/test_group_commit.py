"""The group commit: fsyncs off the event loop, one per log per round, failures kept apart.

acks=-1 produces and offset commits both wait on it; the tests hold a flush in progress with
a gate so that the rounds are decided by the test, not by timing.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from edplog import Log, Store
from edplog.broker.group_commit import GroupCommit
from edplog.records import build_batch

_here = Path(__file__).resolve().parents[1] / "group"


class _Watched:
    """A real log whose flushes are counted, with the thread that ran each; the first flush
    waits for ``gate`` so that later requests arrive while it runs."""

    def __init__(self, log: Log, gate: threading.Event | None = None, fail: bool = False):
        self.log, self.gate, self.fail = log, gate, fail
        self.threads: list[str] = []

    def flush(self) -> None:
        self.threads.append(threading.current_thread().name)
        if self.gate is not None and len(self.threads) == 1:
            assert self.gate.wait(10)
        if self.fail:
            raise OSError(28, "No space left on device")
        self.log.flush()


def _log(path: Path) -> Log:  # one unflushed record
    log = Log(str(path))
    log.append_batches(build_batch([(None, b"v")]))
    return log


def test_waiters_arriving_during_a_flush_share_the_next_round_off_the_loop(tmp_path) -> None:
    """Tried: one flush held on disk while six more requests (two logs) arrive and the loop
    keeps running. Must hold: the loop thread never flushes, the loop ticks meanwhile, and the
    six share one more round: log a is flushed twice in all, log b once."""
    gate = threading.Event()
    a = _Watched(_log(tmp_path / "a"), gate)
    b = _Watched(_log(tmp_path / "b"))
    rounds: list[float] = []

    async def main() -> None:
        commit = GroupCommit(observe=rounds.append)
        first = asyncio.ensure_future(commit.flush([a]))
        while not a.threads:
            await asyncio.sleep(0.001)
        later = [asyncio.ensure_future(commit.flush([a] if i % 2 else [a, b])) for i in range(6)]
        for _ in range(20):  # the loop runs while the disk is held
            await asyncio.sleep(0.001)
        assert not first.done() and not any(f.done() for f in later)
        gate.set()
        await asyncio.gather(first, *later)
        await commit.close()

    asyncio.run(main())
    assert len(a.threads) == 2 and len(b.threads) == 1
    assert all(name.startswith("edplog-flush") for name in a.threads + b.threads)
    assert len(rounds) == 2
    a.log.close()
    b.log.close()


def test_a_failing_flush_fails_only_the_requests_waiting_on_that_log(tmp_path) -> None:
    """Tried: a full disk under one of two logs flushed in the same round. Must hold: the
    requests on the full log get its OSError, the others succeed and their log is flushed."""
    full = _Watched(_log(tmp_path / "full"), fail=True)
    fine = _Watched(_log(tmp_path / "fine"))

    async def main() -> list[BaseException | None]:
        commit = GroupCommit()
        results = await asyncio.gather(
            commit.flush([full]),
            commit.flush([fine]),
            commit.flush([fine, full]),
            return_exceptions=True,
        )
        await commit.close()
        return list(results)

    on_full, on_fine, on_both = asyncio.run(main())
    assert isinstance(on_full, OSError) and on_full.errno == 28
    assert on_fine is None
    assert isinstance(on_both, OSError)
    assert fine.threads and fine.log.recovery_point == 1
    full.log.close()
    fine.log.close()


def test_offset_commits_are_flushed_through_the_group_commit(tmp_path, monkeypatch) -> None:
    """Tried: an OffsetCommit on a coordinator given the broker's group commit. Must hold: it
    is answered only after a flush round of the group commit (one round), and the offset is on
    disk when the store is reopened."""
    monkeypatch.syspath_prepend(str(_here))
    from group_helpers import commit_errors, commit_req, fetch_req, fetched, make_coord

    rounds: list[float] = []

    async def main() -> None:
        store = Store(str(tmp_path))
        store.create_topic("orders", 1)
        commit = GroupCommit(observe=rounds.append)
        coord = make_coord(store, flush=commit.flush)
        await coord.start()
        before = len(rounds)
        req = commit_req("app", {("orders", 0): 7})
        assert set(commit_errors(await coord.offset_commit(req, 8)).values()) == {0}
        assert len(rounds) == before + 1
        await coord.close()
        await commit.close()
        store.close()
        store = Store(str(tmp_path))
        coord = make_coord(store)
        await coord.start()
        assert fetched(await coord.offset_fetch(fetch_req("app"), 7)) == {
            ("orders", 0): (7, -1, "")
        }
        await coord.close()
        store.close()

    asyncio.run(main())


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
