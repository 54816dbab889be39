"""Protocol indices seeded with malformed documents, as careless scripts or other tools write them:
each bad connector gets `error` naming its field, each bad job ends `error` with the reason, and
a healthy connector beside them syncs in the same pass, with no traceback in the output."""

import subprocess
import sys
import uuid
from pathlib import Path

from elastic_ingest.connectors.protocol import JobStatus
from elastic_ingest.connectors.protocol.connector import new_connector_document
from elastic_ingest.connectors.protocol.indices import CONNECTOR_MAPPINGS
from tests.integration.conftest import make_settings
from tests.integration.jobs import ConnectorHarness

PROJECT = Path(__file__).resolve().parents[2]


def connector(service_type="directory", index=None, **fields):
    """A connector document with its own index (one connector per index)."""
    document = new_connector_document(service_type, index or f"ok-index-{uuid.uuid4().hex[:8]}")
    document.update({"status": "configured", **fields})
    return document


async def test_a_dozen_malformed_documents_never_stop_a_healthy_connector(es, tmp_path):
    settings = make_settings(service={"use_deployments": False, "poll_interval": 1})
    es.created_indices += [settings.protocol.connectors_index, settings.protocol.jobs_index]
    harness = ConnectorHarness(es, settings, tmp_path)
    # The connectors index as this service's first version made it: its objects were not
    # parsed (`enabled: false`), so a string could sit where an object belongs. (Elastic's
    # template maps them as objects, and Elasticsearch itself refuses such a document.)
    lenient = {**CONNECTOR_MAPPINGS["properties"]}
    for name in ("configuration", "scheduling", "pipeline", "features"):
        lenient[name] = {"type": "object", "enabled": False}
    await es.indices.create(
        index=settings.protocol.connectors_index,
        mappings={"dynamic": False, "properties": lenient},
    )
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    healthy_index = f"content-{settings.protocol.connectors_index}"
    es.created_indices.append(healthy_index)
    healthy = await harness.create("directory", healthy_index, path=str(folder))
    await harness.connectors.patch(healthy, {"sync_now": True})
    plain_index = f"{healthy_index}-plain"
    es.created_indices.append(plain_index)
    plain = await harness.connectors.create(
        connector(index=plain_index, configuration={"path": str(folder)}, sync_now=True)
    )

    bad_connectors = {
        "configuration": connector(configuration="path=/srv", sync_now=True),
        "scheduling": connector(scheduling="0 * * * * ?", sync_now=True),
        "scheduling.full": connector(scheduling={"full": "hourly"}, sync_now=True),
        "service_type": {**connector(sync_now=True), "service_type": None},
        "index_name": {**connector(sync_now=True), "index_name": ""},
        "status": connector(status="bogus", sync_now=True),
        "pipeline": connector(pipeline=["not", "an", "object"], sync_now=True),
        "features": connector(features="dls", sync_now=True),
        "protocol's own documents": connector(
            index=settings.protocol.jobs_index, configuration={"path": str(folder)}, sync_now=True
        ),
        "unknown service type": connector(service_type="nosuch", sync_now=True),
    }
    bad_ids = {
        field: await harness.connectors.create(document)
        for field, document in bad_connectors.items()
    }
    job_base = {"status": "pending", "created_at": "2026-01-01T00:00:00+00:00"}
    bad_jobs = {
        "connector.id": {**job_base, "connector": {"service_type": "directory"}},
        "job_type": {
            **job_base,
            "job_type": 5,
            "connector": {"id": "ghost", "service_type": "directory"},
        },
    }
    bad_jobs["status"] = {
        **job_base,
        "status": ["pending"],
        "connector": {"id": "ghost", "service_type": "directory"},
    }
    zombie_folder = tmp_path / "zombie"
    zombie_folder.mkdir()
    zombie_index = f"zombie-{settings.protocol.connectors_index}"
    es.created_indices.append(zombie_index)
    zombie = await harness.create("directory", zombie_index, path=str(zombie_folder))
    zombie_job = await harness.jobs.documents.create(
        {
            **job_base,
            "status": "in_progress",
            "last_seen": 1_000,  # epoch milliseconds: a valid Elasticsearch date, long ago
            "connector": {"id": zombie, "service_type": "directory"},
        }
    )
    bad_job_ids = {
        field: await harness.jobs.documents.create(document) for field, document in bad_jobs.items()
    }

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "elastic_ingest.flows.poll",
            "--once",
            "-c",
            str(harness.config_file),
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout

    for connector_id in (healthy, plain):
        [job] = await harness.jobs.for_connector(connector_id)
        assert job.status == JobStatus.COMPLETED and job.doc["indexed_document_count"] == 1
    assert (await harness.connectors.get(plain)).configuration["path"]["value"] == str(folder)
    for field, connector_id in bad_ids.items():
        bad = await harness.connectors.get(connector_id)
        assert bad.status == "error", field
        assert field in bad.doc["error"], (field, bad.doc["error"])
    for field, job_id in bad_job_ids.items():
        job = (await harness.jobs.documents.get(job_id))["_source"]
        assert job["status"] == "error" and field in job["error"], (field, job)
    zombie = await harness.jobs.get(zombie_job)
    assert zombie.status == JobStatus.ERROR and "no heartbeat" in zombie.doc["error"]
