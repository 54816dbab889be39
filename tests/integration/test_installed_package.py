"""The built wheel, installed in a fresh virtualenv and run from a directory outside the checkout:
it imports as `elastic_ingest` only, finds no config file and uses the built-in defaults, deploys
its own prefect.yaml, and a worker of that virtualenv syncs a connector to a completed job.

The virtualenv reaches its dependencies through a .pth line to this checkout's virtualenv (the
same pinned versions, without a second 500 MB download); a path a .pth line adds is not scanned
for .pth files, so the checkout's editable install stays out of it. Nothing else of the
checkout is on its path: the test asserts where each module is loaded from.
"""

import os
import shutil
import site
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from elastic_ingest.connectors.config import load_settings
from elastic_ingest.connectors.es.client import create_client
from elastic_ingest.connectors.es.indices import delete_indices
from elastic_ingest.connectors.protocol import JobStatus, protocol_for
from tests.integration.private_prefect import PrivatePrefect, stop
from tests.integration.stack import elasticsearch_section
from tests.integration.waiting import wait_for

PROJECT = Path(__file__).resolve().parents[2]
PACKAGED = ["pyproject.toml", "README.md", "src"]
pytestmark = pytest.mark.slow


def run(command, *, cwd, env=None, timeout=180):
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A virtualenv with the wheel built from the packaged folders, and nothing of the checkout."""
    work = tmp_path_factory.mktemp("installed")
    source = work / "source"
    source.mkdir()
    for name in PACKAGED:
        if (PROJECT / name).is_dir():
            shutil.copytree(
                PROJECT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(PROJECT / name, source / name)
    dist = work / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
         "-w", str(dist), str(source)],
        cwd=work,
    )  # fmt: skip
    [wheel] = dist.glob("elastic_ingest-*.whl")
    target = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(target)], cwd=work)
    python = target / "bin" / "python"
    run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         str(wheel)],
        cwd=work,
    )  # fmt: skip
    [purelib] = (target / "lib").glob("python3*/site-packages")
    (purelib / "checkout-dependencies.pth").write_text(site.getsitepackages()[0] + "\n")
    return target


def clean_env(**extra) -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH, no config variable."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ELASTIC_INGEST_CONFIG")}
    return {**env, **extra}


def test_the_wheel_imports_under_its_own_name_and_lists_the_built_in_sources(venv, tmp_path):
    python = str(venv / "bin" / "python")
    where = run(
        [python, "-c", "import elastic_ingest.flows.sync as s, importlib.util as u; "
         "print(s.__file__); print(u.find_spec('connectors'), u.find_spec('flows'))"],
        cwd=tmp_path, env=clean_env(),
    ).split()  # fmt: skip
    assert where[0].startswith(str(venv)), where  # the wheel's copy, not the checkout's
    assert where[1:] == ["None", "None"]  # no top-level `connectors` or `flows` to collide with
    listed = run([str(venv / "bin" / "elastic-ingest"), "--action", "list"], cwd=tmp_path,
                 env=clean_env(HOME=str(tmp_path)))  # fmt: skip
    for service_type in ("directory", "mongodb", "s3"):
        assert f"{service_type} " in listed
    assert "elastic_ingest.connectors.sources.directory:DirectoryDataSource" in listed
    assert "UNAVAILABLE" not in listed
    version = run(
        [str(venv / "bin" / "elastic-ingest"), "--version"], cwd=tmp_path, env=clean_env()
    )
    assert version.strip() == "elastic-ingest 0.1.0"


async def test_the_installed_package_deploys_itself_and_its_worker_syncs_a_folder(venv, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    home = tmp_path / "home"  # a user's machine: no ~/.config/elastic-ingest, no checkout
    home.mkdir()
    config_file = tmp_path / "elsewhere.yml"  # only the protocol indices differ from the defaults
    config_file.write_text(
        yaml.safe_dump(
            {
                "elasticsearch": elasticsearch_section(),
                "protocol": {
                    "connectors_index": f".elastic-connectors-pkg-{suffix}",
                    "jobs_index": f".elastic-connectors-sync-jobs-pkg-{suffix}",
                },
            }
        )
    )
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(4):
        (folder / f"note{i}.md").write_text(f"note {i}")
    index = f"pkg-docs-{suffix}"
    server = PrivatePrefect(tmp_path / "prefect-home")
    try:
        server.start()
    except RuntimeError as error:
        pytest.fail(str(error))
    env = {**server.client_env, "HOME": str(home), "PREFECT_WORKER_QUERY_SECONDS": "1"}
    env.pop("PYTHONPATH", None)
    env.pop("ELASTIC_INGEST_CONFIG", None)
    cli = str(venv / "bin" / "elastic-ingest")
    settings = load_settings(config_file)
    es = create_client(settings.elasticsearch)
    worker = None
    try:
        deployed = run([cli, "deploy"], cwd=tmp_path, env=env)
        assert "sync/directory" in deployed and "poll/service" in deployed
        assert f"deployed to {server.api}, on work pool elastic-ingest" in deployed
        api = server.api
        deployment = httpx.get(f"{api}/deployments/name/sync/directory").json()
        assert deployment["entrypoint"] == "elastic_ingest.flows.sync:sync"

        created = run(
            [cli, "-c", str(config_file), "connector", "create", "--service-type", "directory",
             "--index-name", index, "--set", f"path={folder}"],
            cwd=tmp_path, env=env,
        )  # fmt: skip
        connectors, jobs = protocol_for(es, settings)
        [connector] = await connectors.all("directory")
        assert created.strip() == connector.id and connector.index_name == index

        worker_log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed with the worker
        worker = subprocess.Popen(
            [str(venv / "bin" / "python"), "-m", "prefect", "worker", "start", "--pool",
             "elastic-ingest"],
            env=env, cwd=home, stdout=worker_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        run(
            [str(venv / "bin" / "python"), "-m", "prefect", "deployment", "run", "sync/directory",
             "--param", f"connector_id={connector.id}", "--param", f"config_file={config_file}"],
            cwd=home, env=env,
        )  # fmt: skip

        async def finished():
            found = await jobs.for_connector(connector.id)
            ended = found and found[0].status in (JobStatus.COMPLETED, JobStatus.ERROR)
            return found if ended else None

        [job] = await wait_for(
            finished, 120, what="a finished job", every=0.5,
            detail=lambda: f"worker log:\n{(tmp_path / 'worker.log').read_text()}",
        )  # fmt: skip
        assert job.status == JobStatus.COMPLETED, job.doc.get("error")
        assert job.doc["indexed_document_count"] == 4
        await es.indices.refresh(index=index)
        assert (await es.count(index=index))["count"] == 4
    finally:
        if worker is not None:
            stop(worker)
        server.stop()
        await delete_indices(es, [index, settings.protocol.connectors_index,
                                  settings.protocol.jobs_index])  # fmt: skip
        await es.close()
