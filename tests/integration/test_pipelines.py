"""A connector's `pipeline` settings on the real stack: the ingest pipeline every bulk request
names (checked before anything is written), and text extracted from binary files when
`extract_binary_content` is on (the stack's Elasticsearch has no attachment processor, so the
service extracts it itself)."""

import io

import docx
import pytest
from fpdf import FPDF

from tests.integration.conftest import make_settings
from tests.integration.jobs import ConnectorHarness
from tests.integration.test_s3_source import config_for, make_bucket
from tests.integration.test_sync_kinds import indexed


def pdf_bytes(text: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


def docx_bytes(text: str) -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


async def set_pipeline(harness, connector, **settings):
    current = (await harness.connectors.get(connector)).doc["pipeline"]
    await harness.connectors.patch(connector, {"pipeline": {**current, **settings}})


async def pipeline_runs(es, name):
    stats = await es.request("GET", "/_nodes/stats/ingest")
    return sum(
        node["ingest"]["pipelines"].get(name, {}).get("count", 0)
        for node in stats["nodes"].values()
    )


async def test_every_bulk_request_names_the_connectors_pipeline(es, admin_es, harness, index_name):
    # Elasticsearch skips a pipeline without processors, and this one has a single processor
    # kind: set_security_user, which on a cluster without security rejects every document.
    name = f"{index_name}-pipeline"
    processor = {"set_security_user": {"field": "indexed_by"}}
    await admin_es.ingest.put_pipeline(id=name, processors=[processor])
    try:
        documents = [{"_id": f"d{i}", "n": i} for i in range(7)]
        connector = await harness.create("memory", index_name, documents=documents)
        await set_pipeline(harness, connector, name=name)
        synced = await harness.sync(connector)
        assert await pipeline_runs(es, name) == 7  # each document went through it
        if synced.failed:  # no security here: each rejected by the pipeline, with its reason
            assert synced.failed == 7 and "set_security_user" in synced.failures[0]["reason"]
        else:  # a secured cluster: written through it
            assert synced.created == 7
    finally:
        await admin_es.ingest.delete_pipeline(id=name)


async def test_a_missing_pipeline_fails_the_job_before_anything_is_written(es, harness, index_name):
    connector = await harness.create("memory", index_name, documents=[{"_id": "a", "n": 1}])
    await set_pipeline(harness, connector, name="no-such-pipeline")
    synced = await harness.sync(connector)
    assert synced.status == "error"
    assert synced.error == (
        f"JobSetupError: connector {connector}: ingest pipeline 'no-such-pipeline' does not "
        "exist in Elasticsearch; create it, or change the connector's pipeline.name"
    )
    assert not await es.indices.exists(index=index_name)


async def test_elastics_default_pipeline_absent_from_the_cluster_is_not_an_error(
    es, harness, index_name
):
    connector = await harness.create("memory", index_name, documents=[{"_id": "a", "n": 1}])
    pipeline = (await harness.connectors.get(connector)).doc["pipeline"]
    assert pipeline["name"] == "search-default-ingestion"  # what Kibana writes by default
    synced = await harness.sync(connector)
    assert synced.status == "completed" and synced.created == 1


@pytest.fixture
def small_extraction_harness(es, tmp_path):
    """Extraction refuses files over 100 kB here, to test the limit with small files."""
    settings = make_settings(extraction={"max_bytes": 100_000})
    es.created_indices += [settings.protocol.connectors_index, settings.protocol.jobs_index]
    return ConnectorHarness(es, settings, tmp_path)


async def test_text_is_extracted_from_binary_files_of_a_folder(
    es, small_extraction_harness, index_name, tmp_path
):
    harness = small_extraction_harness
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "report.pdf").write_bytes(pdf_bytes("Quarterly   zebra\n\n\nfigures"))
    (folder / "letter.docx").write_bytes(docx_bytes("Dear giraffe"))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7 this is not really a pdf")
    (folder / "huge.pdf").write_bytes(b"%PDF-1.7" + b"0" * 150_000)
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff not extracted")
    connector = await harness.create("directory", index_name, path=str(folder))

    synced = await harness.sync(connector)
    assert synced.status == "completed" and synced.created == 5
    contents = await indexed(es, index_name)
    assert contents["report.pdf"]["body"] == "Quarterly zebra\nfigures"  # whitespace reduced
    assert "Dear giraffe" in contents["letter.docx"]["body"]
    assert "body" not in contents["broken.pdf"] and contents["broken.pdf"]["extraction_error"]
    assert contents["huge.pdf"]["extraction_error"] == (
        "file is 146.5 KiB, over the 97.7 KiB extraction limit"
    )
    assert "body" not in contents["photo.jpg"] and "extraction_error" not in contents["photo.jpg"]
    assert synced.fetched == 3  # huge.pdf and photo.jpg were never read

    await set_pipeline(harness, connector, reduce_whitespace=False)
    synced = await harness.sync(connector)  # nothing changed at the source, the settings did
    assert synced.fetched == 3 and synced.skipped == 0
    body = (await indexed(es, index_name))["report.pdf"]["body"]
    assert "zebra" in body and body != "Quarterly zebra\nfigures"  # as the PDF gave it

    await set_pipeline(harness, connector, extract_binary_content=False)
    synced = await harness.sync(connector)
    contents = await indexed(es, index_name)
    assert "body" not in contents["report.pdf"] and "body" not in contents["letter.docx"]
    assert synced.fetched == 0


async def test_text_is_extracted_from_s3_objects_only_when_they_change(es, harness, index_name, s3):
    bucket = await make_bucket(
        s3, {"a.pdf": pdf_bytes("okapi"), "b.docx": docx_bytes("narwhal"), "c.txt": b"plain"}
    )
    connector = await harness.create("s3", index_name, **config_for(bucket))
    synced = await harness.sync(connector)
    contents = await indexed(es, index_name)
    assert "okapi" in contents[f"{bucket}/a.pdf"]["body"]
    assert "narwhal" in contents[f"{bucket}/b.docx"]["body"]
    assert synced.fetched == 3

    await s3.put_object(Bucket=bucket, Key="a.pdf", Body=pdf_bytes("quokka"))
    synced = await harness.sync(connector)
    assert synced.fetched == 1 and synced.updated == 1
    assert "quokka" in (await indexed(es, index_name))[f"{bucket}/a.pdf"]["body"]
