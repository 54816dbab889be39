"""Which indices a connector may write into: a valid, visible index that is not the protocol's own.

A sync deletes from its target whatever the source did not produce, so a connector aimed at the
connectors or jobs index (or any hidden or system index) would erase it. Every place that chooses
a target asks `target_problem` first: create, the poll pass, and the job at its start.
"""

from __future__ import annotations

from elastic_ingest.connectors.config import ProtocolSettings
from elastic_ingest.connectors.index_names import name_problem


def target_problem(name: object, protocol: ProtocolSettings) -> str | None:
    """Why a connector may not sync into `name`, or None when it may."""
    problem = name_problem(name)
    if problem:
        return problem
    assert isinstance(name, str)
    own = (protocol.connectors_index, protocol.jobs_index)
    if any(name == index or name.startswith(f"{index}-") for index in own):
        return f"index {name!r} holds the connector protocol's own documents; choose another index"
    if name.startswith("."):
        return f"index {name!r} is a hidden or system index (leading '.'); choose another index"
    return None


def resolved_problem(name: str, concrete: list[str], protocol: ProtocolSettings) -> str | None:
    """Why a target that resolves (through aliases) to `concrete` indices may not be synced."""
    for index in concrete:
        if index == name:
            continue
        problem = target_problem(index, protocol)
        if problem:
            return f"index {name!r} is an alias of {index!r}: {problem}"
    return None


def shared_index_problem(index: str, connector_id: str | None, targeting: list[str]) -> str | None:
    """One connector per index, since a full sync deletes what its own source lacks: why
    `connector_id` may not target `index` that the connectors `targeting` target (None: it may).
    The poll pass, the job before it snapshots, and `connector create/update` ask this."""
    others = sorted(set(targeting) - {connector_id})
    if not others:
        return None
    return (
        f"index {index} is also the target of connector {', '.join(others)}; a full sync of "
        "either would delete the other's documents (give each connector its own index)"
    )
