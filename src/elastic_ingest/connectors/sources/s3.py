"""Objects in S3 buckets (or any S3-compatible store through `endpoint_url`), on aioboto3."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from fnmatch import fnmatchcase
from typing import Any, ClassVar

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from elastic_ingest.connectors.rule_shapes import object_problems, string_list_problems
from elastic_ingest.connectors.source import (
    LAZY,
    PARTITIONS_FIELD,
    PARTITIONS_SETTING,
    BaseDataSource,
    ConfigField,
    Document,
    IncompleteListing,
    SourceError,
    binary,
    cursor_since,
    lazy,
    listing_started,
)
from elastic_ingest.connectors.sources.text import (
    content_kind,
    decode_text,
    extraction_refusal,
    guess_content_type,
)

CONCURRENT_READS = 8


class S3DataSource(BaseDataSource):
    """One document per object; `_timestamp` is LastModified plus the ETag (second resolution
    alone would miss an overwrite within the same second)."""

    FETCH_BATCH = 64  # bodies held at once: at most 64 x max_content_bytes
    name = "Amazon S3"
    description = "Objects in S3 buckets (MinIO and other S3-compatible stores via endpoint_url)."
    DOCUMENT_FIELDS = frozenset(
        {"bucket", "key", "size", "last_modified", "etag", "content_type", "storage_class"}
        | {"body", "extraction_error"}
    )
    CONFIGURATION: ClassVar = {
        "buckets": ConfigField("Buckets", "list", required=True),
        "prefix": ConfigField("Key prefix", default=""),
        "endpoint_url": ConfigField("Endpoint URL (MinIO, other S3-compatible stores)"),
        "region": ConfigField("Region", default="us-east-1"),
        "access_key_id": ConfigField("Access key id (empty: default AWS credential chain)"),
        "secret_access_key": ConfigField("Secret access key", sensitive=True, display="password"),
        "page_size": ConfigField("Objects per listing page", "int", 1000),
        "connect_timeout": ConfigField("Connect timeout (s)", "int", 5),
        "read_timeout": ConfigField("Read timeout (s)", "int", 30),
        "max_attempts": ConfigField("Attempts per request (botocore retries)", "int", 3),
        PARTITIONS_SETTING: PARTITIONS_FIELD,
        "max_content_bytes": ConfigField("Largest object whose text is indexed", "int", 1_048_576),
    }
    ALIASES: ClassVar = {  # Elastic's S3 connector's names
        "aws_access_key_id": "access_key_id",
        "aws_secret_access_key": "secret_access_key",
    }

    def __init__(self, configuration=None, context=None):
        super().__init__(configuration, context)
        self._next_cursor: dict | None = None  # what the last listing (or `changed`) saw
        self._stack = AsyncExitStack()
        self._clients: dict[str, Any] = {}
        self._session = aioboto3.Session(
            aws_access_key_id=self.config["access_key_id"] or None,
            aws_secret_access_key=self.config["secret_access_key"] or None,
        )

    async def _client(self, region: str | None = None):
        """One client per region, created once and reused."""
        region = region or self.config["region"]
        if region not in self._clients:
            client = self._session.client(
                "s3",
                region_name=region,
                endpoint_url=self.config["endpoint_url"] or None,
                config=Config(
                    retries={"max_attempts": self.config["max_attempts"], "mode": "standard"},
                    connect_timeout=self.config["connect_timeout"],
                    read_timeout=self.config["read_timeout"],
                ),
            )
            self._clients[region] = await self._stack.enter_async_context(client)
        return self._clients[region]

    def _explain(self, bucket: str, error: Exception) -> str:
        if isinstance(error, ClientError):
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket"):
                return f"S3 bucket {bucket!r} does not exist"
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return f"S3 bucket {bucket!r}: access denied ({code}); check the access key"
            return f"S3 bucket {bucket!r}: {code or error}"
        where = self.config["endpoint_url"] or f"region {self.config['region']}"
        return f"S3 at {where} is unreachable: {error}"

    @classmethod
    def advanced_rules_problems(cls, rules) -> list[str]:
        """Elastic's S3 shape, `[{"bucket", "prefix", "extension": [".pdf"]}]`, plus `include`
        (key globs); when set, these rules say which buckets are read, not `buckets`."""
        if not isinstance(rules, list):
            return [f"advanced rules must be a list of objects, got {rules!r}"]
        problems = []
        fields = {"bucket": str, "prefix": str, "extension": list, "include": list}
        for number, rule in enumerate(rules, start=1):
            where = f"advanced rule {number}"
            problems += object_problems(rule, where, fields, required=("bucket",))
            for name in ("extension", "include"):
                if isinstance(rule, dict) and isinstance(rule.get(name), list):
                    problems += string_list_problems(rule[name], f"{where}.{name}")
        return problems

    def _scopes(self) -> dict[str, list[dict]]:
        """bucket -> the rules that select its objects (the configured prefix without rules)."""
        if not self.context.advanced_rules:
            prefix = self.config["prefix"]
            return {bucket: [{"prefix": prefix}] for bucket in self.config["buckets"]}
        scopes: dict[str, list[dict]] = {}
        for rule in self.context.advanced_rules:
            scopes.setdefault(rule["bucket"], []).append(rule)
        return scopes

    async def ping(self) -> None:
        client = await self._client()
        for bucket in self._scopes():
            try:
                await client.head_bucket(Bucket=bucket)
            except (ClientError, BotoCoreError) as error:
                raise SourceError(self._explain(bucket, error)) from None

    async def confirm_complete(self, listed: int) -> None:
        """A bucket deleted while it was listed can end the listing early without an error:
        every bucket read must still answer."""
        try:
            await self.ping()
        except SourceError as error:
            raise IncompleteListing(f"after the listing: {error}") from None

    async def _list(
        self, bucket: str, prefix: str, folders: list[str] | None = None
    ) -> AsyncIterator[list[dict]]:
        """Pages of the objects under `prefix`; with `folders` (a list to fill), only the objects
        directly under it, and the "folders" below it (common prefixes) go into the list."""
        client = await self._client()
        paginator = client.get_paginator("list_objects_v2")
        options = {"Delimiter": "/"} if folders is not None else {}
        pages = paginator.paginate(
            Bucket=bucket,
            Prefix=prefix,
            PaginationConfig={"PageSize": self.config["page_size"]},
            **options,
        )
        try:
            async for page in pages:
                if folders is not None:
                    folders += [common["Prefix"] for common in page.get("CommonPrefixes", [])]
                yield page.get("Contents", [])
        except (ClientError, BotoCoreError) as error:
            raise IncompleteListing(f"listing failed: {self._explain(bucket, error)}") from None

    async def _objects(self) -> AsyncIterator[tuple[str, dict]]:
        """(bucket, listing entry) of every selected object: each bucket is listed once, under
        the prefix its rules share, so an object two rules select comes once. A part lists
        its own prefixes (and, for the first part, the objects directly under each bucket's)."""
        part = self.context.partition
        for bucket, rules in self._scopes().items():
            prefix = os.path.commonprefix([rule.get("prefix", "") for rule in rules])
            if part is None:
                listings = [self._list(bucket, prefix)]
            else:
                listings = [self._list(bucket, sub) for sub in part["prefixes"].get(bucket, [])]
                if part["direct"]:
                    listings.append(self._list(bucket, prefix, folders=[]))
            for listing in listings:
                async for page in listing:
                    for item in page:
                        if any(_selects(rule, item["Key"]) for rule in rules):
                            yield bucket, item

    async def partitions(self, count: int) -> list[dict]:
        """The "folders" one level below each bucket's prefix, in `count` groups of neighbours;
        the objects directly under a bucket's prefix go with the first group."""
        folders: list[tuple[str, str]] = []
        for bucket, rules in self._scopes().items():
            prefix = os.path.commonprefix([rule.get("prefix", "") for rule in rules])
            found: list[str] = []
            async for _ in self._list(bucket, prefix, folders=found):
                pass
            folders += [(bucket, sub) for sub in sorted(found)]
        if len(folders) < 2:
            return []
        size = -(-len(folders) // min(count, len(folders)))  # ceiling division
        groups = [folders[start : start + size] for start in range(0, len(folders), size)]
        parts = []
        for n, group in enumerate(groups):
            prefixes: dict[str, list[str]] = {}
            for bucket, sub in group:
                prefixes.setdefault(bucket, []).append(sub)
            first, last = group[0], group[-1]
            label = f"{first[0]}/{first[1]} .. {last[0]}/{last[1]}"
            parts.append({"label": label, "prefixes": prefixes, "direct": n == 0})
        return parts

    async def changed(self, cursor: dict | None) -> bool:
        """Compare a fingerprint of the listing (keys, ETags, LastModified) with the cursor's;
        without one there is nothing to compare, and the sync's own listing makes one."""
        if not cursor or "fingerprint" not in cursor:
            return True
        started = listing_started()
        fingerprint = _Fingerprint()
        async for bucket, item in self._objects():
            fingerprint.add(bucket, item)
        self._next_cursor = {"fingerprint": fingerprint.hexdigest(), "since": started.isoformat()}
        return cursor["fingerprint"] != self._next_cursor["fingerprint"]

    async def get_docs(self) -> AsyncIterator[Document]:
        started = listing_started()
        fingerprint = _Fingerprint()
        async for bucket, item in self._objects():
            fingerprint.add(bucket, item)
            yield self._listed(bucket, item)
        self._next_cursor = {"fingerprint": fingerprint.hexdigest(), "since": started.isoformat()}

    def can_sync_since(self, cursor: dict | None) -> bool:
        return cursor_since(cursor) is not None

    def sync_cursor(self) -> dict | None:
        return self._next_cursor

    async def get_docs_since(self, cursor: dict) -> AsyncIterator[Document]:
        """Objects modified at or after the cursor (less the overlap); the listing is cheap,
        the bodies of those the index already holds are never fetched."""
        started = listing_started()
        since = cursor_since(cursor) - self.INCREMENTAL_OVERLAP
        async for bucket, item in self._objects():
            if item["LastModified"] >= since:
                yield self._listed(bucket, item)
        self._next_cursor = {**cursor, "since": started.isoformat()}

    async def get_ids(self) -> AsyncIterator[str]:
        async for bucket, item in self._objects():
            yield f"{bucket}/{item['Key']}"

    def _listed(self, bucket: str, item: dict) -> Document:
        """An object's document from its listing entry; a text body is fetched later, and only
        if the index does not hold this version."""
        key, size = item["Key"], item.get("Size", 0)
        modified = item["LastModified"].isoformat()
        etag = (item.get("ETag") or "").strip('"')
        document = {
            "_id": f"{bucket}/{key}",
            "_timestamp": f"{modified} {etag}",
            "bucket": bucket,
            "key": key,
            "size": size,
            "last_modified": modified,
            "etag": etag,
            "content_type": guess_content_type(key),
            "storage_class": item.get("StorageClass", "STANDARD"),
        }
        text_up_to = self.config["max_content_bytes"]
        binary_up_to = self.context.extract_binary_up_to
        kind = content_kind(key, size, text_up_to, binary_up_to)
        if kind:
            lazy(document, (bucket, key, kind))
        elif refusal := extraction_refusal(key, size, binary_up_to):
            document["extraction_error"] = refusal
        return document

    async def fetch(self, documents: list[Document]) -> list[Document]:
        reads = asyncio.Semaphore(CONCURRENT_READS)
        return list(await asyncio.gather(*(self._with_body(d, reads) for d in documents)))

    async def _with_body(self, document: Document, reads: asyncio.Semaphore) -> Document:
        bucket, key, kind = document[LAZY]
        async with reads:
            body, content_type = await self._read(bucket, key)
        if content_type:
            document["content_type"] = content_type
        if kind == "binary" and body is not None:
            return binary(document, body, key.rsplit("/", 1)[-1])
        text = decode_text(body, key, content_type) if body is not None else None
        if text is not None:
            document["body"] = text
        return document

    async def _read(self, bucket: str, key: str) -> tuple[bytes | None, str | None]:
        client = await self._client()
        try:
            response = await client.get_object(Bucket=bucket, Key=key)
            async with response["Body"] as stream:
                return await stream.read(), response.get("ContentType")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None, None  # deleted since it was listed: metadata only
            raise SourceError(self._explain(bucket, error)) from None

    async def close(self) -> None:
        await self._stack.aclose()
        self._clients.clear()


def _selects(rule: dict, key: str) -> bool:
    """Whether one advanced rule (or the configured prefix) selects an object key."""
    if not key.startswith(rule.get("prefix", "")):
        return False
    extensions = rule.get("extension")
    if extensions and not key.lower().endswith(
        tuple("." + e.lower().lstrip(".") for e in extensions)
    ):
        return False
    globs = rule.get("include")
    return not globs or any(fnmatchcase(key, glob) for glob in globs)


class _Fingerprint:
    """A digest of a listing: equal digests, an unchanged set of objects."""

    def __init__(self):
        self.digest = hashlib.blake2b(digest_size=16)

    def add(self, bucket: str, item: dict) -> None:
        self.digest.update(
            f"{bucket}\0{item['Key']}\0{item.get('ETag')}\0"
            f"{item['LastModified'].isoformat()}\n".encode()
        )

    def hexdigest(self) -> str:
        return self.digest.hexdigest()
