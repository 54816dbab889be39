"""A process loads what its work needs and nothing else (`python -X importtime` names every
module imported): the CLI's help and source list load neither Prefect nor the Elasticsearch
client, and a sync of one source type never loads another source's client library."""

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


def imported(*args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line]
    return {name for name in lines if name and not name.startswith("imported package")}


@pytest.mark.parametrize("args", [["--help"], ["--action", "list"]])
def test_the_cli_help_and_source_list_load_no_prefect_and_no_elasticsearch_client(args):
    loaded = imported("-m", "elastic_ingest.app.cli", *args)
    # the listing really is of this process
    assert "elastic_ingest.app.cli" in loaded or "argparse" in loaded
    assert "prefect" not in loaded and "elasticsearch" not in loaded
    assert "elastic_ingest.connectors.es.client" not in loaded


@pytest.mark.parametrize(
    ("source", "foreign"),
    [
        ("elastic_ingest.connectors.sources.mongo", {"aioboto3", "botocore"}),
        ("elastic_ingest.connectors.sources.s3", {"pymongo"}),
    ],
)
def test_a_sync_loads_only_its_own_source_client(source, foreign):
    loaded = imported("-c", f"import elastic_ingest.flows.sync, {source}")
    assert source in loaded
    assert not foreign & loaded


def test_a_sync_loads_no_second_http_stack_and_no_numpy():
    """Elasticsearch is spoken over httpx, which Prefect loads anyway: not elasticsearch-py with
    aiohttp, requests and urllib3 beside it (~20 MB), nor numpy for the snapshot (~11 MB)."""
    loaded = imported("-c", "import elastic_ingest.flows.sync, elastic_ingest.flows.poll")
    assert "elastic_ingest.connectors.es.transport" in loaded and "httpx" in loaded
    assert not {"elasticsearch", "elastic_transport", "aiohttp", "requests", "numpy"} & loaded
