"""Which indices a connector may write into: a valid, visible index that is not the protocol's own.

A sync deletes from its target whatever the source did not produce, so a connector aimed at the
connectors or jobs index (or any hidden or system index) would erase it. Every place that chooses
a target asks `target_problem` first: create, the poll pass, and the job at its start.
"""

from __future__ import annotations

from connectors.config import ProtocolSettings

_FORBIDDEN_CHARACTERS = set('\\/*?"<>| ,#:')
_MAX_BYTES = 255


def name_problem(name: object) -> str | None:
    """Why `name` is not a valid Elasticsearch index name, or None when it is."""
    if not isinstance(name, str) or not name:
        return "no index name"
    if name != name.lower():
        return f"index name {name!r} must be lowercase"
    bad = sorted(set(name) & _FORBIDDEN_CHARACTERS)
    if bad:
        return f"index name {name!r} contains {' '.join(repr(c) for c in bad)}"
    if name in (".", "..") or name[0] in "-_+":
        return f"index name {name!r} cannot start with {name[0]!r}"
    if len(name.encode()) > _MAX_BYTES:
        return f"index name {name[:40]!r}... is longer than {_MAX_BYTES} bytes"
    return None


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
