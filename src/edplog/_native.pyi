"""Type stubs of edplog's native core (bindings/_native.pyx)."""

from collections.abc import Iterable
from typing import Any

from numpy.typing import NDArray

Buffer = bytes | bytearray | memoryview

def crc32c(data: Buffer, crc: int = 0) -> int: ...
def crc32c_portable(data: Buffer, crc: int = 0) -> int: ...

class Record:
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    def __init__(
        self,
        offset: int,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes | None]] = (),
    ) -> None: ...

class Batch:
    base_offset: int
    last_offset: int
    leader_epoch: int
    attributes: int
    base_timestamp_ms: int
    max_timestamp_ms: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int
    crc: int
    size_bytes: int
    records: list[Record]
    @property
    def compression(self) -> str: ...
    @property
    def is_transactional(self) -> bool: ...
    @property
    def is_control(self) -> bool: ...
    @property
    def timestamp_type(self) -> str: ...

class BatchBuilder:
    size_bytes: int
    max_timestamp_ms: int
    def __len__(self) -> int: ...
    def reset(self) -> None: ...
    def append(
        self,
        value: Buffer | None,
        key: Buffer | None = None,
        headers: Iterable[tuple[str, bytes | None]] | None = None,
        timestamp_ms: int | None = None,
    ) -> int: ...
    def append_at(
        self,
        offset_delta: int,
        value: Buffer | None,
        key: Buffer | None = None,
        headers: Iterable[tuple[str, bytes | None]] | None = None,
        timestamp_ms: int | None = None,
    ) -> None: ...
    def build(
        self,
        compression: str | int | None = None,
        base_offset: int = 0,
        leader_epoch: int = -1,
        producer_id: int = -1,
        producer_epoch: int = -1,
        base_sequence: int = -1,
        transactional: bool = False,
        control: bool = False,
        last_offset_delta: int = -1,
    ) -> bytes: ...

def decode_batches(data: Buffer, verify: bool = True, records: bool = True) -> list[Batch]: ...
def scan_batches(
    data: Buffer, strict: bool = True, check_crc: bool = True, require_ascending: bool = False
) -> tuple[int, int, int, int, int, int]: ...
def assign_offsets(
    data: bytearray | memoryview, next_offset: int, leader_epoch: int = -1
) -> int: ...
def varint_encode(v: int) -> bytes: ...
def varint_decode(data: Buffer, pos: int = 0) -> tuple[int, int]: ...
def segment_file_names(directory: str, base_offset: int) -> tuple[str, str, str]: ...
def decode_records_into(
    out: list[Record], data: Buffer, min_offset: int, max_records: int, verify: bool = True
) -> tuple[int, int]: ...
def decode_columns_into(
    data: Buffer,
    min_offset: int,
    offsets: NDArray[Any],
    timestamps: NDArray[Any],
    lengths: NDArray[Any],
    values: NDArray[Any],
    n: int,
    vn: int,
    verify: bool = True,
) -> tuple[int, int, int, bool]: ...

class Segment:
    path: str
    directory: str
    base_offset: int
    writable: bool
    created_at: float
    sealed: bool
    size: int
    next_offset: int
    max_timestamp_ms: int
    offset_of_max_timestamp: int
    poisoned: bool
    closed: bool
    index_entries: int
    index_is_full: bool
    def __init__(
        self,
        directory: str,
        base_offset: int,
        index_max_bytes: int = ...,
        index_interval_bytes: int = ...,
        writable: bool = True,
    ) -> None: ...
    def load(self) -> None: ...
    def recover(self, must_keep_offset: int = -1) -> tuple[int, int, int, int, str | None]: ...
    def append(self, data: Buffer) -> None: ...
    def flush(self) -> None: ...
    def find(self, offset: int) -> int: ...
    def slice(self, offset: int, max_bytes: int) -> tuple[int, int]: ...
    def find_timestamp(self, target_ms: int) -> int: ...
    def pread(self, pos: int, length: int) -> bytes: ...
    def readinto(self, buf: bytearray | memoryview, pos: int) -> int: ...
    def truncate(self, offset: int) -> None: ...
    def seal(self) -> None: ...
    def close(self) -> None: ...
    def fileno(self) -> int: ...
    def index_lookup(self, offset: int) -> tuple[int, int]: ...

class LogCore:
    log_end_offset: int
    def append(
        self,
        value: Buffer | None,
        key: Buffer | None = None,
        headers: Iterable[tuple[str, bytes | None]] | None = None,
        timestamp_ms: int | None = None,
    ) -> int: ...
    def append_batches(
        self, data: Buffer, leader_epoch: int = -1, log_append_time_ms: int | None = None
    ) -> tuple[int, int]: ...

DEFAULT_MAX_UNCOMPRESSED_BYTES: int

def validate_records(
    data: Buffer, strict: bool = True, max_uncompressed_bytes: int = ...
) -> tuple[int, int, int]: ...

class OffsetMap:
    capacity: int
    full: bool
    max_offset: int
    def __init__(self, capacity_bytes: int) -> None: ...
    def __len__(self) -> int: ...
    def get(self, key: Buffer) -> int: ...
    def put(self, key: Buffer, offset: int) -> bool: ...
    def clear(self) -> None: ...
    def add_batches(
        self, data: Buffer, max_uncompressed_bytes: int = ...
    ) -> tuple[int, int, bool]: ...

def filter_batches(
    data: Buffer,
    offset_map: OffsetMap,
    tombstone_deadline_ms: int,
    out: bytearray,
    max_uncompressed_bytes: int = ...,
) -> tuple[int, int]: ...
