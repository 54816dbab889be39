"""Elasticsearch's rules for index names, checked where a user types one (config, CLI, Kibana)."""

from __future__ import annotations

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
