"""The controller's fenced writes: ZooKeeper multi-ops that first check /controller_epoch.

Every metadata write of the controller is collected in a :class:`FencedOps` and committed as
one multi-op that starts with ``check(/controller_epoch, version)``, so a controller that lost
its session (a zombie) cannot change anything once another controller incremented the epoch.
"""

from __future__ import annotations

from kazoo.exceptions import (
    BadVersionError,
    NoNodeError,
    RolledBackError,
    RuntimeInconsistency,
)

from ..errors import EdplogError
from .zk_codec import (
    CONTROLLER_EPOCH,
    DELETE_TOPICS,
    PartitionState,
    TopicAssignment,
    _json,
    config_path,
    encode_assignment,
    encode_state,
    state_path,
    topic_path,
)
from .zk_session import ZkSession


class ControllerMovedError(EdplogError):
    """A fenced write's controller-epoch check failed: another controller took over."""


class FencedOps:
    """Controller writes collected for one multi-op that first checks /controller_epoch."""

    def __init__(self, zk: ZkSession, epoch_zk_version: int) -> None:
        self._zk = zk
        self._txn = zk.kazoo.transaction()
        self._txn.check(CONTROLLER_EPOCH, epoch_zk_version)
        self._count = 0
        self._created: set[str] = set()

    def __len__(self) -> int:
        return self._count

    def create_state(self, topic: str, partition: int, st: PartitionState) -> FencedOps:
        # The parents are created in the same multi-op (not before it): a zombie must not be
        # able to leave empty znodes under a deleted topic. A missing topic znode fails it.
        partitions = f"{topic_path(topic)}/partitions"
        for path in (partitions, f"{partitions}/{partition}"):
            if path not in self._created and self._zk.kazoo.exists(path) is None:
                self._txn.create(path, b"")
                self._created.add(path)
        self._txn.create(state_path(topic, partition), encode_state(st))
        self._count += 1
        return self

    def set_state(self, topic: str, partition: int, st: PartitionState, version: int) -> FencedOps:
        self._txn.set_data(state_path(topic, partition), encode_state(st), version)
        self._count += 1
        return self

    def set_assignment(self, ta: TopicAssignment, version: int) -> FencedOps:
        self._txn.set_data(topic_path(ta.topic), encode_assignment(ta), version)
        self._count += 1
        return self

    def set_json(self, path: str, obj: object, version: int) -> FencedOps:
        """Any znode's JSON (the controller's edits of /admin requests)."""
        self._txn.set_data(path, _json(obj), version)
        self._count += 1
        return self

    def delete(self, path: str, version: int = -1) -> FencedOps:
        self._txn.delete(path, version)
        self._count += 1
        return self

    def delete_topic(self, topic: str) -> FencedOps:
        """The topic's state znodes, partitions, assignment, config and deletion marker. The
        tree is listed now; a znode created under it before commit() fails the multi-op."""
        for path in reversed(self._zk.subtree(topic_path(topic))):
            self._txn.delete(path)
        for path in (config_path(topic), f"{DELETE_TOPICS}/{topic}"):
            if self._zk.kazoo.exists(path) is not None:
                self._txn.delete(path)
        self._count += 1
        return self

    def commit(self) -> None:
        """Run the multi-op. ControllerMovedError when the epoch check failed (nothing was
        written); BadVersionError / NoNodeError / NodeExistsError / NotEmptyError when another
        operation failed (nothing was written either: re-read and retry)."""
        results = self._txn.commit()
        first = results[0] if results else True
        if isinstance(first, (BadVersionError, NoNodeError)):
            raise ControllerMovedError("the controller epoch changed: another controller is active")
        for result in results[1:]:
            if isinstance(result, Exception) and not isinstance(
                result, (RolledBackError, RuntimeInconsistency)
            ):
                raise result
