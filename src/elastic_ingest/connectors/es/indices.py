"""Create indices when missing; an existing index or alias is used as it is."""

from __future__ import annotations

import logging
import warnings

from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.transport import (
    BadRequestError,
    ElasticsearchWarning,
    NotFoundError,
)

logger = logging.getLogger(__name__)


async def ensure_index(
    es: ESClient,
    name: str,
    mappings: dict | None = None,
    settings: dict | None = None,
    alias: str | None = None,
) -> bool:
    """Create `name` (reachable as `alias` too, if given) unless an index or alias of that name,
    or the alias, exists; True when it was created."""
    if await es.indices.exists(index=name) or (alias and await es.indices.exists(index=alias)):
        return False
    aliases = {alias: {"is_write_index": True}} if alias else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ElasticsearchWarning)
        try:
            await es.indices.create(
                index=name, mappings=mappings, settings=settings, aliases=aliases
            )
        except BadRequestError as error:
            if error.error == "resource_already_exists_exception":
                return False
            raise
    for warning in caught:
        logger.warning(
            "Elasticsearch warns about index %s: %s (it still works; to avoid the warning, "
            "configure a name without a leading dot under `protocol:` in config.yml)",
            name,
            warning.message,
        )
    return True


async def ensure_aliased_index(es: ESClient, alias: str, mappings: dict, settings: dict) -> bool:
    """`<alias>-v1` behind `alias`, as Elasticsearch's templates lay out the protocol indices."""
    return await ensure_index(es, f"{alias}-v1", mappings, settings, alias=alias)


async def delete_indices(es: ESClient, names: list[str]) -> None:
    """Delete indices by name or alias (an alias deletes the indices behind it); missing: fine."""
    concrete = set()
    for name in names:
        concrete.update(await concrete_indices(es, name))
    if concrete:
        await es.options(ignore_status=404).indices.delete(index=",".join(sorted(concrete)))


# Deleted documents' versions are kept this long, so a fenced-out writer cannot resurrect a
# document a newer job deleted (Elasticsearch's default is 60 s, shorter than a stale job).
CONTENT_INDEX_SETTINGS = {"index.gc_deletes": "1h"}


# The identities of document-level security are matched exactly; mapped when the index is made
# (unused while DLS is off), so no later mapping update is needed.
CONTENT_INDEX_MAPPINGS = {"properties": {"_allow_access_control": {"type": "keyword"}}}


async def ensure_content_index(es: ESClient, name: str) -> bool:
    """Create a connector's target index unless it (or an alias) exists; True when created."""
    return await ensure_index(es, name, CONTENT_INDEX_MAPPINGS, CONTENT_INDEX_SETTINGS)


async def refresh(es: ESClient, index: str) -> None:
    await es.indices.refresh(index=index)


async def concrete_indices(es: ESClient, name: str) -> list[str]:
    """The indices `name` stands for (itself, or what an alias points to); [] if nothing yet."""
    try:
        resolved = await es.indices.resolve_index(name=name, expand_wildcards="all")
    except NotFoundError:
        return []
    found = [index["name"] for index in resolved.get("indices", [])]
    for alias in resolved.get("aliases", []):
        found += alias.get("indices", [])
    return found
