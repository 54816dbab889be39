"""A snapshot of what an index holds, kept on disk: each id (in a JSON-lines file) and 64-bit
hashes of each id and `_timestamp` (in numpy arrays), so memory is ~17 bytes per document."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.scan import stream_index_versions

SPILL_EVERY = 200_000


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
        return Path(self.directory) / "stale.npy"


def hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


async def snapshot_index(es: ESClient, index: str, directory: str) -> IndexSnapshot:
    """Write every (id, _timestamp) the index holds to `directory`, streaming page by page."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    id_hashes, version_hashes = [], []
    with open(folder / "ids.jsonl", "wb") as ids:
        async for document_id, timestamp in stream_index_versions(es, index):
            ids.write(orjson.dumps(document_id) + b"\n")
            id_hashes.append(hash64(document_id))
            version_hashes.append(hash64(timestamp) if timestamp is not None else 0)
            if len(id_hashes) % SPILL_EVERY == 0:  # keep the Python lists short: spill to disk
                _spill(folder, id_hashes, version_hashes)
    _spill(folder, id_hashes, version_hashes)
    count = len(np.load(folder / "id_hashes.npy", mmap_mode="r"))
    return IndexSnapshot(str(folder), count)


def _spill(folder: Path, id_hashes: list[int], version_hashes: list[int]) -> None:
    """Append the pending hashes to the arrays on disk and clear the lists."""
    for name, values in (("id_hashes", id_hashes), ("version_hashes", version_hashes)):
        path = folder / f"{name}.npy"
        new = np.array(values, dtype=np.uint64)
        if path.exists() and len(values) != 0:
            new = np.concatenate([np.load(path), new])
        if not path.exists() or len(values) != 0:
            np.save(path, new)
        values.clear()


class IndexedVersions:
    """The snapshot's hashes sorted for lookup, with a mark for each id the source produced."""

    def __init__(self, snapshot: IndexSnapshot):
        folder = Path(snapshot.directory)
        ids = np.load(folder / "id_hashes.npy")
        self.order = np.argsort(ids, kind="stable")
        self.ids = ids[self.order]
        self.versions = np.load(folder / "version_hashes.npy")[self.order]
        self.seen = np.zeros(len(ids), dtype=bool)

    def unchanged(self, id_hashes: np.ndarray, version_hashes: np.ndarray) -> np.ndarray:
        """Mark the given ids seen; True where the index already holds that exact version."""
        if len(self.ids) == 0:
            return np.zeros(len(id_hashes), dtype=bool)
        positions = np.searchsorted(self.ids, id_hashes)
        positions[positions == len(self.ids)] = 0
        found = self.ids[positions] == id_hashes
        self.seen[positions[found]] = True
        return found & (self.versions[positions] == version_hashes)

    def mark_seen(self, id_hashes: np.ndarray) -> None:
        """Mark the given ids seen (a deletion sync lists ids without versions)."""
        if len(self.ids) == 0 or len(id_hashes) == 0:
            return
        positions = np.searchsorted(self.ids, id_hashes)
        positions[positions == len(self.ids)] = 0
        self.seen[positions[self.ids[positions] == id_hashes]] = True

    def save_stale(self, path: Path) -> int:
        """Write a mask (in snapshot order) of ids the source did not produce; return the count."""
        stale = np.ones(len(self.ids), dtype=bool)
        stale[self.order[self.seen]] = False
        np.save(path, stale)
        return int(stale.sum())
