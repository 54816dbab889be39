"""Create indices when missing; an existing index or alias is used as it is."""

from __future__ import annotations

import logging
import warnings

from elasticsearch import AsyncElasticsearch, BadRequestError, ElasticsearchWarning

logger = logging.getLogger(__name__)


async def ensure_index(
    es: AsyncElasticsearch, name: str, mappings: dict | None = None, settings: dict | None = None
) -> bool:
    """Create `name` unless an index or alias of that name exists; True when it was created."""
    if await es.indices.exists(index=name):
        return False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ElasticsearchWarning)
        try:
            await es.indices.create(index=name, mappings=mappings, settings=settings)
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
