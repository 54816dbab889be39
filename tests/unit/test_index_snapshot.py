"""The snapshot's lookup table: every indexed id is found, absent ones are not, and the stale
mask names exactly the ids the source did not list, also when hashes collide and wrap."""

from array import array
from pathlib import Path

from elastic_ingest.connectors.engine.snapshot import (
    IndexedVersions,
    IndexSnapshot,
    hash64,
    load_stale,
)


def write_snapshot(folder: Path, ids: list[int], versions: list[int]) -> IndexSnapshot:
    (folder / "id_hashes.u64").write_bytes(array("Q", ids).tobytes())
    (folder / "version_hashes.u64").write_bytes(array("Q", versions).tobytes())
    return IndexSnapshot(str(folder), len(ids))


def test_colliding_and_wrapping_hashes_are_all_found(tmp_path):
    # 5 ids -> 7 slots: 7, 14 and 21 all start at slot 0; 6 and 13 start at the last slot,
    # and 13 wraps to the front, behind 7, 14 and 21
    ids = [7, 14, 6, 21, 13]
    indexed = IndexedVersions(write_snapshot(tmp_path, ids, [1, 2, 3, 4, 5]))
    assert indexed.size == 7
    assert [indexed.position(i) for i in ids] == [0, 1, 2, 3, 4]
    assert indexed.position(28) == -1 and indexed.position(20) == -1
    assert indexed.unchanged([14, 13, 28], [2, 9, 1]) == [True, False, False]
    indexed.mark_seen([6, 35])
    assert indexed.save_stale(tmp_path / "stale.mask") == 2  # 7 and 21 were never listed
    assert list(load_stale(tmp_path / "stale.mask")) == [1, 0, 0, 1, 0]


def test_many_real_hashes(tmp_path):
    ids = [hash64(f"doc-{n}") for n in range(5000)]
    indexed = IndexedVersions(write_snapshot(tmp_path, ids, [hash64(str(n)) for n in range(5000)]))
    listed = range(0, 5000, 2)
    unchanged = indexed.unchanged([ids[n] for n in listed], [hash64(str(n)) for n in listed])
    assert all(unchanged)
    assert indexed.unchanged([hash64("absent")], [hash64("0")]) == [False]
    assert indexed.save_stale(tmp_path / "stale.mask") == 2500
    assert list(load_stale(tmp_path / "stale.mask")) == [n % 2 for n in range(5000)]


def test_a_document_without_a_version_is_never_unchanged(tmp_path):
    # the index holds "a" without `_timestamp` (hash 0); the source lists it without one too
    indexed = IndexedVersions(write_snapshot(tmp_path, [hash64("a")], [0]))
    assert indexed.unchanged([hash64("a")], [0]) == [False]
    assert indexed.save_stale(tmp_path / "stale.mask") == 0  # but it was seen


def test_an_empty_index_holds_nothing(tmp_path):
    indexed = IndexedVersions(write_snapshot(tmp_path, [], []))
    assert indexed.unchanged([hash64("a")], [hash64("1")]) == [False]
    assert indexed.save_stale(tmp_path / "stale.mask") == 0
