"""pyproject.toml lists the wheel's packages by hand (each folder maps to an `elastic_ingest.*`
subpackage): a new subpackage that is not listed would be missing from the installed wheel."""

import tomllib
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
FOLDERS = ("connectors", "flows", "tasks", "app", "deployments")


def test_every_package_folder_is_in_the_wheel():
    setuptools = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["setuptools"]
    in_checkout = {
        "elastic_ingest." + ".".join(init.parent.relative_to(PROJECT).parts)
        for folder in FOLDERS
        for init in (PROJECT / folder).rglob("__init__.py")
    }
    assert in_checkout <= set(setuptools["packages"])
    for folder in FOLDERS:
        assert setuptools["package-dir"][f"elastic_ingest.{folder}"] == folder
