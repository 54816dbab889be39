"""The drift audit (`connector verify`), a sync's dry run (`connector sync --dry-run`) and the
`verify` flow, on the real stack: exactly what was changed by hand is reported, nothing is
written, and a sync brings the index back to equal."""

import json
import uuid

import pytest

from tests.integration.conftest import make_settings
from tests.integration.jobs import ConnectorHarness
from tests.integration.test_cli import cli


@pytest.fixture
def harness(es, tmp_path):
    settings = make_settings()
    es.created_indices += [settings.protocol.connectors_index, settings.protocol.jobs_index]
    return ConnectorHarness(es, settings, tmp_path)


@pytest.fixture
async def synced_folder(es, harness, index_name, tmp_path):
    """A directory connector of 20 files, synced once; (connector id, folder)."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(20):
        (folder / f"doc{n:02}.md").write_text(f"document {n}")
    connector = await harness.create("directory", index_name, path=str(folder))
    first = await harness.sync(connector)
    assert first.status == "completed" and first.created == 20, first.error
    return connector, folder


async def indexed_ids(es, index):
    await es.indices.refresh(index=index)
    response = await es.search(index=index, size=100, source=False)
    return {hit["_id"] for hit in response["hits"]["hits"]}


def verify(harness, connector, *options, check=False):
    return cli(str(harness.config_file), "connector", "verify", connector, *options, check=check)


async def test_verify_reports_exactly_what_was_changed_by_hand(
    es, harness, synced_folder, index_name
):
    connector, _ = synced_folder
    equal = verify(harness, connector)
    assert equal.returncode == 0, equal.stderr
    assert f"index {index_name} equals the source" in equal.stdout
    assert "(20 documents)" in equal.stdout

    ids = sorted(await indexed_ids(es, index_name))
    gone, changed = ids[0], ids[1]
    await es.delete(index=index_name, id=gone)
    await es.update(index=index_name, id=changed, doc={"_timestamp": "1999-01-01T00:00:00Z"})
    await es.index(index=index_name, id="added-by-hand", document={"title": "not in the folder"})
    await es.indices.refresh(index=index_name)

    drifted = verify(harness, connector, "-o", "json")
    assert drifted.returncode == 1
    report = json.loads(drifted.stdout)
    assert report["equal"] is False
    assert (report["missing"], report["stale"], report["extra"]) == (
        {"count": 1, "sample": [gone]},
        {"count": 1, "sample": [changed]},
        {"count": 1, "sample": ["added-by-hand"]},
    )
    assert (report["indexed"], report["listed"]) == (20, 20)
    assert "1 missing, 1 stale, 1 extra" in drifted.stderr  # the one-line reason for exit 1
    assert await indexed_ids(es, index_name) == {*ids[1:], "added-by-hand"}  # nothing written

    # the folder did not change, so a sync would trust "nothing changed": the drift noted on
    # the connector makes its next full sync read everything, which repairs the index
    noted = (await harness.connectors.get(connector)).doc["drift"]
    assert noted["summary"].startswith(f"index {index_name} drifts") and noted["found_at"]
    again = await harness.sync(connector)
    assert again.status == "completed", again.error
    assert (again.created, again.updated, again.deleted) == (1, 1, 1)
    assert (await harness.connectors.get(connector)).doc["drift"] is None
    assert verify(harness, connector).returncode == 0
    unchanged = await harness.sync(connector)
    assert unchanged.changed is False  # the source's "nothing changed" is trusted again


async def test_a_dry_run_says_what_a_sync_would_do_and_does_nothing(
    es, harness, synced_folder, index_name
):
    connector, folder = synced_folder
    (folder / "new.md").write_text("a new document")
    for n in range(15):  # three quarters of the folder gone: more than the guard lets through
        (folder / f"doc{n:02}.md").unlink()
    await harness.connectors.patch(connector, {"delete_guard": {"minimum": 5}})
    before = await indexed_ids(es, index_name)

    plan = cli(str(harness.config_file), "connector", "sync", connector, "--dry-run")
    lines = plan.stdout.splitlines()
    assert lines[0].startswith(
        f"a full sync of connector {connector} would write 1 documents (1 new, 0 changed) and "
        f"delete 15 of the 20 index {index_name} holds"
    )
    assert "the mass-delete guard would hold those deletes" in plan.stdout
    assert await indexed_ids(es, index_name) == before
    jobs = harness.settings.protocol.jobs_index
    await es.indices.refresh(index=jobs)
    assert (await es.count(index=jobs))["count"] == 1  # the first sync's; the dry run made none

    as_json = cli(str(harness.config_file), "connector", "sync", connector, "--dry-run", "-ojson")
    report = json.loads(as_json.stdout)
    assert report["missing"]["count"] == 1 and report["extra"]["count"] == 15
    assert report["guard_would_hold"] is True


async def test_verify_applies_the_sync_rules_as_a_sync_would(
    es, harness, synced_folder, index_name
):
    """A document the rules now exclude is extra in the index until a sync deletes it."""
    connector, _ = synced_folder
    rule = {"field": "name", "rule": "equals", "value": "doc03.md", "policy": "exclude"}
    filtering = await harness.edit_rules(connector, [{"id": "no-doc03", "order": 0, **rule}])
    assert filtering["active"]["validation"]["state"] == "valid", filtering

    report = json.loads(verify(harness, connector, "-o", "json").stdout)
    assert report["extra"]["count"] == 1 and report["excluded"] == 1
    assert report["listed"] == 19 and report["reads_everything_because"]


async def test_verify_of_a_connector_whose_source_is_gone_says_why(harness, index_name, tmp_path):
    folder = tmp_path / "vanishing"
    folder.mkdir()
    connector = await harness.create("directory", index_name, path=str(folder))
    folder.rmdir()
    result = verify(harness, connector)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    [line] = lines
    assert line.startswith(f"error: connector {connector}") and "vanishing" in line


async def test_the_verify_flow_fails_on_drift_and_keeps_a_report(
    es, harness, synced_folder, index_name
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from elastic_ingest.flows.verify import verify as verify_flow

    connector, _ = synced_folder
    state = await verify_flow(connector, str(harness.config_file), return_state=True)
    assert state.is_completed() and "equals the source" in state.message

    await es.index(index=index_name, id=f"extra-{uuid.uuid4().hex[:6]}", document={"n": 1})
    await es.indices.refresh(index=index_name)
    state = await verify_flow(connector, str(harness.config_file), return_state=True)
    assert state.is_failed() and "1 extra" in state.message
    run = ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
    async with get_client() as client:
        [artifact] = await client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=run))
    assert "1 extra" in artifact.data and "extra (the index holds them" in artifact.data
