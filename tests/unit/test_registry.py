"""Source classes resolve by fully-qualified name, with a distinct error for each mistake."""

import pytest

from elastic_ingest.connectors.registry import (
    RegistryError,
    load_source_class,
    registered_sources,
    source_class_for,
)
from elastic_ingest.connectors.sources.memory import MemoryDataSource


def test_a_class_from_this_project_resolves():
    assert (
        load_source_class("elastic_ingest.connectors.sources.memory:MemoryDataSource")
        is MemoryDataSource
    )


def test_a_missing_module_is_named():
    with pytest.raises(RegistryError, match="no module named 'nosuchpackage'"):
        load_source_class("nosuchpackage.mod:Thing")


def test_a_missing_attribute_is_named():
    with pytest.raises(RegistryError, match="has no attribute 'Nope'"):
        load_source_class("elastic_ingest.connectors.sources.memory:Nope")


def test_a_class_that_is_not_a_source_is_refused():
    with pytest.raises(RegistryError, match="is not a source class"):
        load_source_class("pathlib:Path")


def test_an_unknown_service_type_lists_the_known_ones():
    with pytest.raises(RegistryError, match=r"unknown service type 'x' \(registered: a, b"):
        source_class_for({"a": "m:A", "b": "m:B"}, "x")


def test_an_installed_package_registers_a_source_by_entry_point(tmp_path, monkeypatch):
    """What `pip install` of a plugin package declaring the entry point leaves on sys.path."""
    dist = tmp_path / "notes_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: notes-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[elastic_ingest.sources]\n"
        "notes = elastic_ingest.connectors.sources.memory:MemoryDataSource\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert (
        registered_sources({})["notes"]
        == "elastic_ingest.connectors.sources.memory:MemoryDataSource"
    )
    assert source_class_for({}, "notes") is MemoryDataSource
    configured = {"notes": "elastic_ingest.connectors.sources.directory:DirectoryDataSource"}
    assert source_class_for(configured, "notes").__name__ == "DirectoryDataSource"  # config wins
