"""A snapshot of what an index holds, kept on disk: each id (in a JSON-lines file) and 64-bit
hashes of each id and `_timestamp` (raw arrays), so memory is ~22 bytes per indexed document."""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.scan import stream_index_versions

SPILL_EVERY = 10_000  # hashes held before they are appended to the files
LOAD_FACTOR = 0.75  # of the lookup table: ~1.1 probes per lookup, 4 bytes per slot
UINT64 = "Q"
SLOT = "I"  # a position + 1 in the snapshot (0: empty); enough for 4 billion documents
NOT_STALE = bytes.maketrans(b"\x00\x01", b"\x01\x00")  # seen marks -> stale mask


@dataclass(frozen=True)
class IndexSnapshot:
    """Where a snapshot lives on disk, and how many documents the index held."""

    directory: str
    count: int

    @property
    def ids_path(self) -> Path:
        return Path(self.directory) / "ids.jsonl"

    @property
    def stale_path(self) -> Path:
        return Path(self.directory) / "stale.mask"


def hash64(text: str) -> int:
    """A 64-bit hash that is never 0 (0 marks an empty slot, or a document without version)."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


async def snapshot_index(es: ESClient, index: str, directory: str) -> IndexSnapshot:
    """Write every (id, _timestamp) the index holds to `directory`, streaming page by page."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    id_hashes, version_hashes = array(UINT64), array(UINT64)
    count = 0
    with (
        open(folder / "ids.jsonl", "wb") as ids,
        open(folder / "id_hashes.u64", "wb") as id_file,
        open(folder / "version_hashes.u64", "wb") as version_file,
    ):
        async for document_id, timestamp in stream_index_versions(es, index):
            ids.write(orjson.dumps(document_id) + b"\n")
            id_hashes.append(hash64(document_id))
            version_hashes.append(hash64(timestamp) if timestamp is not None else 0)
            if len(id_hashes) >= SPILL_EVERY:
                count += _spill(id_hashes, id_file, version_hashes, version_file)
        count += _spill(id_hashes, id_file, version_hashes, version_file)
    return IndexSnapshot(str(folder), count)


def _spill(id_hashes: array, id_file, version_hashes: array, version_file) -> int:
    """Append the pending hashes to their files, clear them, and return how many there were."""
    pending = len(id_hashes)
    id_hashes.tofile(id_file)
    version_hashes.tofile(version_file)
    del id_hashes[:], version_hashes[:]
    return pending


def _load(path: Path) -> array:
    """The file's hashes, read straight into the array (no second copy while loading)."""
    values = array(UINT64)
    with open(path, "rb") as file:
        values.fromfile(file, path.stat().st_size // values.itemsize)
    return values


class IndexedVersions:
    """The snapshot's hashes with an open-addressing table over them for lookup by id hash, and
    a mark for each id the source produced. Standard-library arrays: 8 + 8 bytes of hashes,
    1 of mark and ~5 of table per document, and no numpy to import (11 MB of RSS)."""

    def __init__(self, snapshot: IndexSnapshot):
        folder = Path(snapshot.directory)
        self.ids = _load(folder / "id_hashes.u64")
        self.versions = _load(folder / "version_hashes.u64")
        self.seen = bytearray(len(self.ids))
        self.size = int(len(self.ids) / LOAD_FACTOR) + 1
        self.slots = array(SLOT, [0]) * self.size
        slots, size = self.slots, self.size
        for position, id_hash in enumerate(self.ids):  # ~0.3 s per million on this machine
            slot = id_hash % size
            while slots[slot]:
                slot = slot + 1 if slot + 1 < size else 0
            slots[slot] = position + 1

    @property
    def empty(self) -> bool:
        return len(self.ids) == 0

    def position(self, id_hash: int) -> int:
        """The id's position in the snapshot, or -1 when the index does not hold it."""
        slots, ids, size = self.slots, self.ids, self.size
        slot = id_hash % size
        while found := slots[slot]:
            if ids[found - 1] == id_hash:
                return found - 1
            slot = slot + 1 if slot + 1 < size else 0
        return -1

    def unchanged(self, id_hashes: Iterable[int], version_hashes: Iterable[int]) -> list[bool]:
        """Mark the given ids seen; True where the index already holds that exact version
        (a version hash of 0, a document listed without a version, matches nothing)."""
        result = []
        for id_hash, version_hash in zip(id_hashes, version_hashes, strict=True):
            position = self.position(id_hash)
            if position < 0:
                result.append(False)
            else:
                self.seen[position] = 1
                result.append(version_hash != 0 and self.versions[position] == version_hash)
        return result

    def mark_seen(self, id_hashes: Iterable[int]) -> None:
        """Mark the given ids seen (a deletion sync lists ids without versions)."""
        for id_hash in id_hashes:
            position = self.position(id_hash)
            if position >= 0:
                self.seen[position] = 1

    def save_stale(self, path: Path) -> int:
        """Write a mask (one byte per id, in snapshot order) of ids the source did not produce;
        return how many."""
        stale = self.seen.translate(NOT_STALE)
        path.write_bytes(stale)
        return stale.count(1)


def load_stale(path: Path) -> bytes:
    """The mask `save_stale` wrote: byte K is 1 when the snapshot's K-th id is stale."""
    return path.read_bytes()
