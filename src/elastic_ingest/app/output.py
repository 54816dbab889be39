"""How commands print: tables, YAML or JSON views with secrets masked, and a closed pipe."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from elastic_ingest.connectors.protocol.secrets import redacted_configuration

if TYPE_CHECKING:
    from elastic_ingest.connectors.protocol import Job
    from elastic_ingest.connectors.protocol.connector import Connector

ERROR_COLUMN = 60


def masked_configuration(connector: Connector, sensitive: frozenset[str]) -> dict:
    shown = redacted_configuration(connector.configuration, sensitive)
    return {name: spec.get("value") for name, spec in shown.items()}


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def connector_view(connector: Connector, sensitive: frozenset[str]) -> dict:
    """What `connector show` prints (YAML or JSON): the document, configuration values masked."""
    shown = {"id": connector.id, **connector.doc}
    shown["configuration"] = masked_configuration(connector, sensitive)
    return shown


def job_view(job: Job) -> dict:
    """What `job show` prints: the document without the connector snapshot's configuration."""
    connector = job.doc.get("connector")
    snapshot = (
        {k: v for k, v in connector.items() if k != "configuration"}
        if isinstance(connector, dict)
        else connector
    )
    return {"id": job.id, **job.doc, "connector": snapshot}


def error_column(error: Any) -> str:
    return " ".join(str(error).split())[:ERROR_COLUMN] if error else "-"


class OutputClosed(Exception):  # noqa: N818 - an outcome: the reader of our output went away
    """stdout was closed by its reader (`| head`, a pager that quit)."""


def print_line(line: str) -> None:
    try:
        print(line, flush=True)  # progress lines reach a pipe (tee, a CI log) as they happen
    except BrokenPipeError:
        raise OutputClosed from None
