"""Checks of advanced sync rules snippets, for sources: one readable message per problem, naming
where in the snippet it is (no JSON-schema dependency for three small shapes)."""

from __future__ import annotations

from typing import Any

_TYPE_NAMES = {str: "a string", list: "a list", dict: "an object", int: "a number"}


def object_problems(
    value: Any, where: str, fields: dict[str, type], required: tuple[str, ...] = ()
) -> list[str]:
    """Problems of one JSON object whose known `fields` have the given types."""
    if not isinstance(value, dict):
        return [f"{where} must be an object, got {value!r}"]
    problems = [f"{where}.{name} is required" for name in required if name not in value]
    for name, item in value.items():
        if name not in fields:
            problems.append(f"{where}.{name} is not supported (supported: {', '.join(fields)})")
        elif not isinstance(item, fields[name]):
            problems.append(f"{where}.{name} must be {_TYPE_NAMES[fields[name]]}, got {item!r}")
    return problems


def string_list_problems(value: Any, where: str) -> list[str]:
    """Problems of a list that must hold strings only."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return [f"{where} must be a list of strings, got {value!r}"]
    return []
