"""Resolve a source class from its fully-qualified name, `package.module:Class`."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from elastic_ingest.connectors.source import BaseDataSource


class RegistryError(LookupError):
    """A source name that does not resolve to a source class; the message says why."""


LEGACY_PREFIX = "connectors."
"""Config files written before the package had its own name say `connectors.sources.x:Class`."""


def load_source_class(qualified_name: str) -> type[BaseDataSource]:
    module_name, _, attribute = qualified_name.partition(":")
    if module_name.startswith(LEGACY_PREFIX):  # one copy of our modules, installed or in a checkout
        module_name = f"elastic_ingest.{module_name}"
    if not module_name or not attribute:
        raise RegistryError(f"{qualified_name!r}: expected 'package.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise RegistryError(f"{qualified_name!r}: no module named {error.name!r}") from None
        raise RegistryError(
            f"{qualified_name!r}: module {module_name!r} imports missing module {error.name!r}"
        ) from None
    target = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise RegistryError(
                f"{qualified_name!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    if not (isinstance(target, type) and issubclass(target, BaseDataSource)):
        raise RegistryError(
            f"{qualified_name!r}: {attribute} is not a source class (subclass BaseDataSource)"
        )
    return target


ENTRY_POINT_GROUP = "elastic_ingest.sources"


def registered_sources(configured: dict[str, str]) -> dict[str, str]:
    """Service type -> `package.module:Class`: the sources installed packages declare in the
    `elastic_ingest.sources` entry point group, then config.yml's `sources` (which wins)."""
    installed = {point.name: point.value for point in entry_points(group=ENTRY_POINT_GROUP)}
    return {**installed, **configured}


def source_class_for(sources: dict[str, str], service_type: str) -> type[BaseDataSource]:
    """The class registered for `service_type` (config.yml's `sources`, or an installed
    package's entry point), or a RegistryError naming the known types."""
    sources = registered_sources(sources)
    if service_type not in sources:
        known = ", ".join(sorted(sources)) or "none"
        raise RegistryError(f"unknown service type {service_type!r} (registered: {known})")
    return load_source_class(sources[service_type])
