"""Directory source: nested folders, globs, symlinks, and reconciliation between syncs."""

import os
import socket


def build_tree(root):
    files = {
        "README.md": "read me",
        "notes/a.txt": "note a",
        "notes/deep/b.md": "note b",
        "notes/deep/skip.log": "a log",
        "build/out.txt": "generated",
        "image.bin": "\x00\x01binary",
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return files


async def indexed(es, index):
    await es.indices.refresh(index=index)
    response = await es.search(index=index, size=1000)
    return {hit["_id"]: hit["_source"] for hit in response["hits"]["hits"]}


async def test_nested_folders_globs_and_changes_between_syncs(es, harness, index_name, tmp_path):
    root = tmp_path / "tree"
    build_tree(root)
    outside = tmp_path / "outside.txt"
    outside.write_text("must not be indexed")
    (root / "link-out.txt").symlink_to(outside)
    (root / "link-in.md").symlink_to(root / "README.md")
    config = {"path": str(root), "include": ["*.md", "*.txt", "*.bin"], "exclude": ["build/*"]}
    first = await harness.sync_source("directory", index_name, **config)
    assert first.status == "completed"
    documents = await indexed(es, index_name)
    assert set(documents) == {
        "README.md",
        "notes/a.txt",
        "notes/deep/b.md",
        "image.bin",
        "link-in.md",
    }
    assert documents["notes/deep/b.md"]["body"] == "note b"
    assert documents["notes/deep/b.md"]["extension"] == ".md"
    assert "body" not in documents["image.bin"]

    (root / "notes/a.txt").unlink()
    (root / "README.md").write_text("read me again")
    stat = (root / "README.md").stat()
    os.utime(root / "README.md", ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    second = await harness.sync_source("directory", index_name, **config)
    p = second
    assert (p.created, p.updated, p.deleted) == (0, 2, 1)  # README.md and link-in.md, its link
    documents = await indexed(es, index_name)
    assert "notes/a.txt" not in documents
    assert documents["README.md"]["body"] == "read me again"


async def test_an_unchanged_folder_is_not_read_again(es, harness, index_name, tmp_path):
    build_tree(tmp_path / "tree")
    first = await harness.sync_source("directory", index_name, path=str(tmp_path / "tree"))
    again = await harness.sync_source("directory", index_name, path=str(tmp_path / "tree"))
    assert first.created == 6
    assert again.status == "completed" and not again.changed and again.seen == 0


async def test_an_unreadable_file_is_a_failed_document_reported_and_retried(
    es, harness, index_name, tmp_path
):
    root = tmp_path / "tree"
    build_tree(root)
    listener = socket.socket(
        socket.AF_UNIX
    )  # listed like a file, but reading it fails, even as root
    listener.bind(str(root / "notes" / "locked.txt"))
    try:
        first = await harness.sync_source("directory", index_name, path=str(root))
    finally:
        listener.close()
    assert first.status == "completed" and first.created == 6 and first.failed == 1
    assert first.job.doc["metadata"]["rejected_document_count"] == 1
    assert first.job.doc["metadata"]["rejected_documents"][0].startswith(
        "notes/locked.txt: cannot read notes/locked.txt"
    )
    assert "notes/locked.txt" not in await indexed(es, index_name)

    (root / "notes" / "locked.txt").unlink()
    (root / "notes" / "locked.txt").write_text("readable now")
    second = await harness.sync_source("directory", index_name, path=str(root))
    assert second.status == "completed" and second.created == 1 and second.failed == 0
    assert (await indexed(es, index_name))["notes/locked.txt"]["body"] == "readable now"
