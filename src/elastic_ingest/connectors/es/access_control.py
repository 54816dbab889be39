"""The Elasticsearch side of document-level security: the identities index, the keyword field
a restriction searches, and API keys restricted to one user's documents."""

from __future__ import annotations

from typing import Any

from elastic_ingest.connectors.access_control import ACCESS_CONTROL
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.indices import ensure_index
from elastic_ingest.connectors.es.transport import ApiError


class KeyRefused(RuntimeError):
    """Elasticsearch would not create the key (its status and reason, in one line)."""


IDENTITIES_SETTINGS = {"index.hidden": True, "number_of_shards": 1, "auto_expand_replicas": "0-1"}
IDENTITIES_MAPPINGS = {
    "dynamic": False,  # as Elastic's template: identities and queries are read, not searched
    "properties": {"created_at": {"type": "date"}, "_timestamp": {"type": "keyword"}},
}


async def ensure_identities_index(es: ESClient, name: str) -> bool:
    """Create the hidden `.search-acl-filter-<index>` unless it exists; True when created."""
    return await ensure_index(es, name, IDENTITIES_MAPPINGS, IDENTITIES_SETTINGS)


async def access_control_field(es: ESClient, index: str) -> str:
    """The keyword field holding a document's identities in `index`: `_allow_access_control`
    itself (as the service maps it in the indices it creates, or here, in an index made elsewhere
    that no document with it reached yet), or the keyword sub-field an index made by Kibana
    (`.enum`) or by dynamic mapping (`.keyword`) gives it."""
    mapped = await _mapped(es, index)
    if mapped is None:
        await es.indices.put_mapping(index=index, properties={ACCESS_CONTROL: {"type": "keyword"}})
        return ACCESS_CONTROL
    if mapped.get("type") in ("keyword", "constant_keyword", "wildcard"):
        return ACCESS_CONTROL
    for name in ("enum", "keyword"):
        if (mapped.get("fields") or {}).get(name, {}).get("type") == "keyword":
            return f"{ACCESS_CONTROL}.{name}"
    raise ValueError(
        f"index {index} maps {ACCESS_CONTROL} as {mapped.get('type')} without a keyword "
        "sub-field: identities cannot be matched exactly (map it as keyword)"
    )


async def _mapped(es: ESClient, index: str) -> dict[str, Any] | None:
    """The field's mapping in the index (the first concrete index of an alias), or None."""
    found = await es.indices.get_field_mapping(index=index, fields=ACCESS_CONTROL)
    for mapping in found.values():
        field = (mapping.get("mappings") or {}).get(ACCESS_CONTROL)
        if field:
            return next(iter(field["mapping"].values()))
    return None


async def create_restricted_key(
    es: ESClient,
    name: str,
    index: str,
    query: dict[str, Any],
    expiration: str,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """An API key that can search `index` and see only the documents `query` matches.
    Elasticsearch lets only a user (not an API key) create a key with privileges."""
    role = {"indices": [{"names": [index], "privileges": ["read"], "query": query}]}
    try:
        response = await es.security.create_api_key(
            name=name,
            expiration=expiration,
            role_descriptors={"search-" + index: role},
            metadata=metadata,
        )
    except ApiError as error:
        raise KeyRefused(f"{error.status} {error.message}") from None
    return response


async def identity_of(es: ESClient, index: str, user_id: str) -> dict[str, Any] | None:
    """A user's identity document from an identities index; None if missing (or no index)."""
    found = await es.options(ignore_status=404).get(index=index, id=user_id)
    return found.get("_source") if found.get("found") else None
