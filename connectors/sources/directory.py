"""A local folder: one document per file, mtime as version, text content up to a size cap."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import ClassVar

from connectors.source import (
    BaseDataSource,
    ConfigField,
    Document,
    IncompleteListing,
    SourceError,
    unreadable,
)
from connectors.sources.text import decode_text, is_text


class DirectoryDataSource(BaseDataSource):
    """Files under a folder (recursive); patterns match the path relative to it, `*` spans `/`."""

    name = "Local directory"
    description = "Files in a local folder, with text content; the zero-setup default."
    CONFIGURATION: ClassVar = {
        "path": ConfigField("Folder to index", required=True),
        "include": ConfigField("Include patterns", type="list", default=["*"]),
        "exclude": ConfigField("Exclude patterns", type="list", default=[]),
        "max_content_bytes": ConfigField("Largest file whose text is indexed", "int", 1_048_576),
    }

    @property
    def root(self) -> Path:
        return Path(self.config["path"]).expanduser().resolve()

    async def ping(self) -> None:
        if not self.root.is_dir():
            raise SourceError(f"folder {self.config['path']!r} does not exist or is not a folder")

    def _files(self) -> Iterator[tuple[str, Path, os.stat_result]]:
        """(relative path, path, stat) of every included file, sorted, never leaving the root."""
        root = self.root

        def fail(error: OSError) -> None:
            raise IncompleteListing(f"cannot list {error.filename}: {error.strerror}")

        for folder, subfolders, files in os.walk(root, onerror=fail):
            subfolders.sort()
            for name in sorted(files):
                path = Path(folder) / name
                relative = path.relative_to(root).as_posix()
                if not self._selected(relative):
                    continue
                if path.is_symlink() and not path.resolve().is_relative_to(root):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue  # removed while listing, or a dangling link
                yield relative, path, stat

    def _selected(self, relative: str) -> bool:
        included = any(fnmatchcase(relative, pattern) for pattern in self.config["include"])
        return included and not any(fnmatchcase(relative, p) for p in self.config["exclude"])

    def _fingerprint(self) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for relative, _, stat in self._files():
            digest.update(f"{relative}\0{stat.st_mtime_ns}\0{stat.st_size}\n".encode())
        return digest.hexdigest()

    async def changed(self, cursor: dict | None) -> bool:
        await self.ping()
        fingerprint = await asyncio.to_thread(self._fingerprint)
        self.cursor = {"fingerprint": fingerprint}
        return not cursor or cursor.get("fingerprint") != fingerprint

    async def get_docs(self) -> AsyncIterator[Document]:
        await self.ping()
        if self.cursor is None:
            self.cursor = {"fingerprint": await asyncio.to_thread(self._fingerprint)}
        for count, (relative, path, stat) in enumerate(self._files()):
            modified = datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC).isoformat()
            document = {
                "_id": relative,
                "_timestamp": modified,
                "path": relative,
                "name": path.name,
                "extension": path.suffix.lower(),
                "size": stat.st_size,
                "modified_at": modified,
            }
            try:
                body = self._text(path, stat.st_size)
            except OSError as error:
                unreadable(document, f"cannot read {relative}: {error.strerror}")
            else:
                if body is not None:
                    document["body"] = body
            yield document
            if count % 100 == 0:
                await asyncio.sleep(0)

    def _text(self, path: Path, size: int) -> str | None:
        """The file's text, None for binary or oversized files; OSError if it cannot be read."""
        if not is_text(path.name) or size > self.config["max_content_bytes"]:
            return None
        return decode_text(path.read_bytes(), path.name)
