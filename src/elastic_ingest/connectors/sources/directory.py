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

from elastic_ingest.connectors.access_control import ACCESS_CONTROL, DLS_SETTING, User
from elastic_ingest.connectors.rule_shapes import object_problems, string_list_problems
from elastic_ingest.connectors.source import (
    DLS_FIELD,
    LAZY,
    PARTITIONS_FIELD,
    PARTITIONS_SETTING,
    BaseDataSource,
    ConfigField,
    ConfigurationError,
    Document,
    IncompleteListing,
    SourceError,
    binary,
    cursor_since,
    lazy,
    listing_started,
    unreadable,
)
from elastic_ingest.connectors.sources.posix_accounts import Accounts, AccountsError
from elastic_ingest.connectors.sources.text import content_kind, decode_text, extraction_refusal


class DirectoryDataSource(BaseDataSource):
    """Files under a folder (recursive); patterns match the path relative to it, `*` spans `/`.

    With document level security, a file's readers follow its owner, group and mode bits
    (a chmod or chown moves its ctime, so it is written again).

    A file's version is the later of its mtime and ctime: ctime moves on every write, rename,
    replacement (a new inode) and size change, and no tool can set it back (`touch -d`,
    `cp -p` and `rsync -t` can all set mtime back). It stays a date, so `_timestamp` keeps
    the date mapping of indices written before."""

    name = "Local directory"
    description = "Files in a local folder, with text content; the zero-setup default."
    DOCUMENT_FIELDS = frozenset(
        {"path", "name", "extension", "size", "modified_at", "body", "extraction_error"}
    )
    CONFIGURATION: ClassVar = {
        "path": ConfigField("Folder to index", required=True),
        "include": ConfigField("Include patterns", type="list", default=["*"]),
        "exclude": ConfigField("Exclude patterns", type="list", default=[]),
        "max_content_bytes": ConfigField("Largest file whose text is indexed", "int", 1_048_576),
        PARTITIONS_SETTING: PARTITIONS_FIELD,
        DLS_SETTING: DLS_FIELD,
        "passwd_file": ConfigField(
            "Users file (format of /etc/passwd) for document level security",
            tooltip="For a folder copied from another system: its users and groups. Empty: "
            "this system's.",
        ),
        "group_file": ConfigField("Groups file (format of /etc/group), with the users file"),
    }

    @classmethod
    def validate_configuration(cls, configuration, strict: bool = False):
        values = super().validate_configuration(configuration, strict)
        if bool(values["passwd_file"]) != bool(values["group_file"]):
            raise ConfigurationError(
                ["passwd_file, group_file: set both (accounts of another system) or neither"]
            )
        return values

    def __init__(self, configuration=None, context=None):
        super().__init__(configuration, context)
        self._next_cursor: dict | None = None  # what the last listing (or `changed`) saw
        self._known_accounts: Accounts | None = None

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

        part = self.context.partition
        for folder, subfolders, files in os.walk(root, onerror=fail):
            subfolders.sort()
            if part is not None and folder == str(root):  # this part's subfolders only
                subfolders[:] = [name for name in subfolders if name in part["folders"]]
                files = files if part["top_files"] else []
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
        """Included by the configuration (and by the advanced rules' `include`, if any), and
        excluded by neither."""
        rules = self.context.advanced_rules or {}
        includes = [self.config["include"], *([rules["include"]] if "include" in rules else [])]
        excludes = self.config["exclude"] + rules.get("exclude", [])
        included = all(any(fnmatchcase(relative, p) for p in patterns) for patterns in includes)
        return included and not any(fnmatchcase(relative, p) for p in excludes)

    async def partitions(self, count: int) -> list[dict]:
        """The top-level subfolders in `count` groups of neighbours (by name); the files at
        the top go with the first group."""
        await self.ping()
        folders = sorted(entry.name for entry in os.scandir(self.root) if _real_folder(entry))
        if len(folders) < 2:
            return []
        size = -(-len(folders) // min(count, len(folders)))  # ceiling division
        groups = [folders[start : start + size] for start in range(0, len(folders), size)]
        return [
            {
                "label": f"{group[0]}/ .. {group[-1]}/"
                + (" and top-level files" if n == 0 else ""),
                "folders": group,
                "top_files": n == 0,
            }
            for n, group in enumerate(groups)
        ]

    @classmethod
    def advanced_rules_problems(cls, rules) -> list[str]:
        """`{"include": [globs], "exclude": [globs]}`: narrows the configured patterns."""
        problems = object_problems(rules, "advanced rules", {"include": list, "exclude": list})
        for name in ("include", "exclude"):
            if isinstance(rules, dict) and isinstance(rules.get(name), list):
                problems += string_list_problems(rules[name], f"advanced rules.{name}")
        return problems

    async def changed(self, cursor: dict | None) -> bool:
        """Compare a fingerprint of every file's stat with the cursor's (a stat walk, no reads);
        without one there is nothing to compare, and the sync's own walk makes one."""
        await self.ping()
        if not cursor or "fingerprint" not in cursor:
            return True
        started = listing_started()

        def walk() -> str:
            fingerprint = hashlib.blake2b(digest_size=16)
            for relative, _, stat in self._files():
                fingerprint.update(_stat_line(relative, stat))
            return fingerprint.hexdigest()

        fingerprint = await asyncio.to_thread(walk)
        self._next_cursor = {"fingerprint": fingerprint, "since": started.isoformat()}
        return cursor["fingerprint"] != fingerprint

    async def get_docs(self) -> AsyncIterator[Document]:
        await self.ping()
        started = listing_started()
        fingerprint = hashlib.blake2b(digest_size=16)
        for count, (relative, path, stat) in enumerate(self._files()):
            fingerprint.update(_stat_line(relative, stat))
            yield self._listed(relative, path, stat)
            if count % 100 == 0:
                await asyncio.sleep(0)
        self._next_cursor = {"fingerprint": fingerprint.hexdigest(), "since": started.isoformat()}

    def can_sync_since(self, cursor: dict | None) -> bool:
        return cursor_since(cursor) is not None

    def sync_cursor(self) -> dict | None:
        return self._next_cursor

    async def get_docs_since(self, cursor: dict) -> AsyncIterator[Document]:
        """Files whose version (the later of mtime and ctime) is at or after the cursor."""
        await self.ping()
        started = listing_started()
        since_ns = int((cursor_since(cursor) - self.INCREMENTAL_OVERLAP).timestamp() * 1e9)
        for count, (relative, path, stat) in enumerate(self._files()):
            if max(stat.st_mtime_ns, stat.st_ctime_ns) >= since_ns:
                yield self._listed(relative, path, stat)
            if count % 100 == 0:
                await asyncio.sleep(0)
        self._next_cursor = {**cursor, "since": started.isoformat()}

    async def get_ids(self) -> AsyncIterator[str]:
        await self.ping()
        for count, (relative, _, _) in enumerate(self._files()):
            yield relative
            if count % 100 == 0:
                await asyncio.sleep(0)

    async def get_access_control(self) -> AsyncIterator[User]:
        """The users of this system (or of the configured files), with their groups."""
        await self.ping()
        for user in self._accounts().users_with_groups():
            yield user

    def _accounts(self) -> Accounts:
        if self._known_accounts is None:
            try:
                if self.config["passwd_file"]:
                    accounts = Accounts.from_files(
                        self.config["passwd_file"], self.config["group_file"]
                    )
                else:
                    accounts = Accounts.of_system()
            except AccountsError as error:
                raise SourceError(str(error)) from None
            self._known_accounts = accounts
        return self._known_accounts

    def _listed(self, relative: str, path: Path, stat: os.stat_result) -> Document:
        """A file's document from its stat; its text is read later, only if it changed."""
        modified = datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC).isoformat()
        version = max(stat.st_mtime_ns, stat.st_ctime_ns)
        document = {
            "_id": relative,
            "_timestamp": datetime.fromtimestamp(version / 1e9, UTC).isoformat(),
            "path": relative,
            "name": path.name,
            "extension": path.suffix.lower(),
            "size": stat.st_size,
            "modified_at": modified,
        }
        if self.dls_enabled:
            document[ACCESS_CONTROL] = self._accounts().file_identities(stat)
        kind = self._content_kind(path.name, stat.st_size)
        if kind:
            lazy(document, (path, kind))
        elif refusal := extraction_refusal(
            path.name, stat.st_size, self.context.extract_binary_up_to
        ):
            document["extraction_error"] = refusal
        return document

    def _content_kind(self, name: str, size: int) -> str | None:
        text_up_to = self.config["max_content_bytes"]
        return content_kind(name, size, text_up_to, self.context.extract_binary_up_to)

    async def fetch(self, documents: list[Document]) -> list[Document]:
        return await asyncio.to_thread(lambda: [self._with_text(d) for d in documents])

    def _with_text(self, document: Document) -> Document:
        path, kind = document[LAZY]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return document  # removed since it was listed: metadata only, like S3
        except OSError as error:
            return unreadable(document, f"cannot read {document['path']}: {error.strerror}")
        if kind == "binary":
            return binary(document, data, path.name)
        body = decode_text(data, path.name)
        if body is not None:
            document["body"] = body
        return document


def _real_folder(entry: os.DirEntry) -> bool:
    """A subfolder the walk enters (it does not follow links)."""
    return entry.is_dir(follow_symlinks=False)


def _stat_line(relative: str, stat: os.stat_result) -> bytes:
    """What the fingerprint covers per file: any write, rename, replacement or resize moves it."""
    return (
        f"{relative}\0{stat.st_mtime_ns}\0{stat.st_ctime_ns}\0{stat.st_size}\0{stat.st_ino}\n"
    ).encode()
