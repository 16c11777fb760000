"""Committed offsets survive closing and reopening the real on-disk store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from group_helpers import commit_errors, commit_req, fetch_req, fetched, make_coord

store_mod = pytest.importorskip("edplog.storage")

from edplog.group.offsets import OFFSETS_TOPIC, decode_key, decode_value  # noqa: E402


def _open(path: Path):
    return store_mod.Store(str(path))


def test_offsets_survive_store_close_and_reopen(tmp_path: Path) -> None:
    async def main() -> None:
        store = _open(tmp_path)
        store.create_topic("orders", 2)
        coord = make_coord(store, offsets_topic_partitions=3)
        await coord.start()
        req = commit_req(
            "app", {("orders", 0): 11, ("orders", 1): 22}, metadata="m", leader_epoch=2
        )
        assert set(commit_errors(await coord.offset_commit(req, 8)).values()) == {0}
        again = commit_req("app", {("orders", 0): 12}, metadata="later")
        assert set(commit_errors(await coord.offset_commit(again, 8)).values()) == {0}
        await coord.close()
        store.close()

        store = _open(tmp_path)
        assert store.topics()[OFFSETS_TOPIC] == 3
        coord = make_coord(store)
        await coord.start()
        got = fetched(await coord.offset_fetch(fetch_req("app"), 7))
        assert got == {("orders", 0): (12, -1, "later"), ("orders", 1): (22, 2, "m")}
        listed = await coord.list_groups({}, 4)
        assert [g["group_id"] for g in listed["groups"]] == ["app"]
        await coord.close()
        store.close()

    asyncio.run(main())


def test_deleted_group_leaves_tombstones_and_stays_deleted_after_reopen(tmp_path: Path) -> None:
    async def main() -> None:
        store = _open(tmp_path)
        store.create_topic("orders", 1)
        coord = make_coord(store)
        await coord.start()
        await coord.offset_commit(commit_req("gone", {("orders", 0): 5}), 8)
        await coord.offset_commit(commit_req("kept", {("orders", 0): 6}), 8)
        result = await coord.delete_groups({"groups_names": ["gone"]}, 2)
        assert result["results"][0]["error_code"] == 0
        await coord.close()
        store.close()

        store = _open(tmp_path)
        log = store.log(OFFSETS_TOPIC, 0)
        records = log.read(log.log_start_offset)
        last = {}
        for record in records:
            key = decode_key(bytes(record.key))
            last[key] = None if record.value is None else decode_value(bytes(record.value))
        assert last[("gone", "orders", 0)] is None, "the delete is a tombstone"
        assert last[("kept", "orders", 0)].offset == 6
        coord = make_coord(store)
        await coord.start()
        assert fetched(await coord.offset_fetch(fetch_req("gone"), 7)) == {}
        assert fetched(await coord.offset_fetch(fetch_req("kept"), 7)) == {
            ("orders", 0): (6, -1, "")
        }
        await coord.close()
        store.close()

    asyncio.run(main())
