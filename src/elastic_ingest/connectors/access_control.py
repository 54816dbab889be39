"""Document-level security, in the protocol's shapes: the identities a content document allows
(`_allow_access_control`), and one identity document per user in `.search-acl-filter-<index>`
holding the query that restricts a search to that user's documents.

Identities are prefixed strings: `user:alice`, `group:staff`, and `everyone` (every user).
Unlike Elastic's template, ours fails closed: with DLS on, every document the service writes
carries the field, and a document whose list is empty is visible to nobody (but a superuser).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

ACCESS_CONTROL = "_allow_access_control"
DLS_SETTING = "use_document_level_security"
ACL_INDEX_PREFIX = ".search-acl-filter-"
EVERYONE = "everyone"
_PREFIXES = ("user:", "group:")
_PARAMS = "{{#toJson}}access_control{{/toJson}}"


@dataclass(frozen=True)
class User:
    """What a source's access-control listing yields: a user, what names them, and every
    identity they hold (their own, their groups', `everyone`)."""

    id: str
    identity: dict[str, Any] = field(default_factory=dict)
    access_control: list[str] = field(default_factory=list)


def user_identity(name: object) -> str:
    return f"user:{name}"


def group_identity(name: object) -> str:
    return f"group:{name}"


def identities(values: Any) -> list[str]:
    """A field's identities, sorted and unique: prefixed ones and `everyone` as they are, a bare
    name as a user's; anything else (None, numbers in a list, a dict) is left out."""
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list | tuple | set):
        return []
    found = set()
    for value in values:
        if isinstance(value, str) and value.strip():
            value = value.strip()
            known = value == EVERYONE or value.startswith(_PREFIXES)
            found.add(value if known else user_identity(value))
    return sorted(found)


def dls_enabled(configuration_values: dict[str, Any]) -> bool:
    """The connector's `use_document_level_security` toggle, as Kibana writes it."""
    value = configuration_values.get(DLS_SETTING)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)


def acl_index(index_name: str) -> str:
    """The identities index of a content index (a Kibana job may already name it)."""
    return index_name if index_name.startswith(ACL_INDEX_PREFIX) else ACL_INDEX_PREFIX + index_name


def content_index(index_name: str) -> str:
    """The content index an identities index (or a content index) belongs to."""
    return index_name.removeprefix(ACL_INDEX_PREFIX)


def query_template(field: str) -> str:
    """The search restriction of one user: documents allowing any of the user's identities."""
    quoted = orjson.dumps(field).decode()
    return '{"bool": {"filter": [{"terms": {' + quoted + ": " + _PARAMS + " } }] } }"


def identity_document(user: User, field: str) -> dict[str, Any]:
    """A user's document for the identities index; `_timestamp` changes with its content, so
    an unchanged user is not written again. `field`: the keyword field the template searches."""
    params = {"access_control": identities(list(user.access_control))}
    document = {
        "_id": user.id,
        "identity": user.identity,
        "query": {"template": {"source": query_template(field), "params": params}},
    }
    content = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    document["_timestamp"] = hashlib.blake2b(content, digest_size=16).hexdigest()
    return document


def restriction_query(identity_doc: dict[str, Any]) -> dict[str, Any]:
    """The plain query of an identity document's template (ours or Elastic's: both pass the
    identities as `access_control` to a `toJson` section)."""
    template = (identity_doc.get("query") or {}).get("template") or {}
    source, params = template.get("source"), template.get("params") or {}
    if not isinstance(source, str) or _PARAMS not in source:
        raise ValueError("the identity document holds no access-control query template")
    rendered = source.replace(_PARAMS, orjson.dumps(params.get("access_control") or []).decode())
    return orjson.loads(rendered)
