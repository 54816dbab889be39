"""The wheel holds every module of the package: setuptools finds the subpackages under src/ by
their `__init__.py`, so a folder of modules without one would be left out of it silently."""

import tomllib
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
PACKAGE = PROJECT / "src" / "elastic_ingest"


def test_every_folder_of_modules_is_a_package_the_wheel_finds():
    setuptools = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["packages"]["find"]["where"] == ["src"]
    assert "package-dir" not in setuptools  # real folders, no mapping
    folders = {path.parent for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts}
    without_init = sorted(
        str(f.relative_to(PROJECT)) for f in folders if not (f / "__init__.py").exists()
    )
    assert without_init == []


def test_no_folder_at_the_top_shadows_a_subpackage():
    """A checkout's top folders are not importable as `connectors` or `flows` any more."""
    for name in ("connectors", "flows", "tasks", "app", "deployments", "elastic_ingest"):
        assert not (PROJECT / name / "__init__.py").exists(), name
