"""Source classes resolve by fully-qualified name, with a distinct error for each mistake."""

import pytest

from connectors.registry import RegistryError, load_source_class, source_class_for
from connectors.sources.memory import MemoryDataSource


def test_a_class_from_this_project_resolves():
    assert load_source_class("connectors.sources.memory:MemoryDataSource") is MemoryDataSource


def test_a_missing_module_is_named():
    with pytest.raises(RegistryError, match="no module named 'nosuchpackage'"):
        load_source_class("nosuchpackage.mod:Thing")


def test_a_missing_attribute_is_named():
    with pytest.raises(RegistryError, match="has no attribute 'Nope'"):
        load_source_class("connectors.sources.memory:Nope")


def test_a_class_that_is_not_a_source_is_refused():
    with pytest.raises(RegistryError, match="is not a source class"):
        load_source_class("pathlib:Path")


def test_an_unknown_service_type_lists_the_known_ones():
    with pytest.raises(RegistryError, match=r"unknown service type 'x' \(configured: a, b\)"):
        source_class_for({"a": "m:A", "b": "m:B"}, "x")
