"""`make run`: index this repository's docs with a `directory` connector through one poll pass,
then say what happened and where to look."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from devstack.__main__ import environment

PROJECT = Path(__file__).resolve().parent.parent
CONNECTOR_ID = "first-run-docs"
INDEX = "elastic-ingest-docs"

for _key, _value in environment().items():
    os.environ.setdefault(_key, _value)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from elastic_ingest.connectors.config import load_settings  # noqa: E402
from elastic_ingest.connectors.es.client import check_reachable, create_client  # noqa: E402
from elastic_ingest.connectors.protocol import (  # noqa: E402
    ConnectorStatus,
    JobStatus,
    ensure_protocol_indices,
    protocol_for,
)
from elastic_ingest.connectors.protocol.connector import new_connector_document  # noqa: E402
from elastic_ingest.connectors.sources.directory import DirectoryDataSource  # noqa: E402


async def prepare(settings) -> None:
    """Create the docs connector once, and ask for a sync now."""
    es = create_client(settings.elasticsearch)
    try:
        await check_reachable(es, settings.elasticsearch.hosts)
        await ensure_protocol_indices(es, settings.protocol)
        connectors, _ = protocol_for(es, settings)
        docs = str(PROJECT / "docs")
        existing = await connectors.get(CONNECTOR_ID)
        if existing is None:
            schema = DirectoryDataSource.configuration_schema()
            schema["path"]["value"] = docs
            document = new_connector_document("directory", INDEX, "This project's docs")
            document.update(configuration=schema, status=ConnectorStatus.CONFIGURED.value)
            await connectors.create(document, CONNECTOR_ID)
            print(f"created connector {CONNECTOR_ID}: folder {docs} -> index {INDEX}")
        elif existing.configuration_values().get("path") != docs:  # another checkout made it
            configuration = existing.configuration
            configuration["path"] = {**configuration.get("path", {}), "value": docs}
            await connectors.patch(CONNECTOR_ID, {"configuration": configuration})
            print(f"connector {CONNECTOR_ID} now reads {docs}")
        await connectors.request_sync(CONNECTOR_ID)
    finally:
        await es.close()


async def summarize(settings) -> int:
    es = create_client(settings.elasticsearch)
    try:
        _, jobs = protocol_for(es, settings)
        [job, *earlier] = await jobs.for_connector(CONNECTOR_ID, size=2)
        total = (await es.count(index=INDEX))["count"]
    finally:
        await es.close()
    d = job.doc
    host = settings.elasticsearch.hosts[0].rstrip("/")
    print()
    print(f"sync job {job.id}: {d['status']}" + (f" ({d['error']})" if d.get("error") else ""))
    if d["status"] == JobStatus.COMPLETED and d["total_document_count"] == 0 and earlier:
        print("nothing changed since the last run: 0 documents indexed, 0 deleted")
    else:
        print(
            f"documents indexed: {d['indexed_document_count']}, "
            f"deleted: {d['deleted_document_count']}, read: {d['total_document_count']}"
        )
    print(f"index {INDEX} now holds {total} documents")
    print('search it (the stack\'s Elasticsearch needs a key: `eval "$(make -s env)"` sets it):')
    print(
        f"  curl -s '{host}/{INDEX}/_search?q=body:sync&size=3&_source=path' "
        '-H "Authorization: ApiKey $ELASTICSEARCH_API_KEY"'
    )
    url = (d.get("metadata") or {}).get("flow_run_url")
    ui = os.environ["PREFECT_API_URL"].removesuffix("/api")
    print(f"Prefect UI: {ui} (this run: {url})" if url else f"Prefect UI: {ui}")
    print(
        "see the connector and its jobs: bin/elastic-ingest connector list; "
        f"bin/elastic-ingest job list {CONNECTOR_ID}"
    )
    return 0 if d["status"] == JobStatus.COMPLETED else 1


def main() -> int:
    from elastic_ingest.flows.poll import poll_forever

    settings = load_settings()
    asyncio.run(prepare(settings))
    code = asyncio.run(poll_forever(None, once=True))
    return asyncio.run(summarize(settings)) or code


if __name__ == "__main__":
    sys.exit(main())
