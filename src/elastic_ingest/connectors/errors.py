"""How any error is said in one line: on the job document, the connector, the CLI and logs."""

from __future__ import annotations

from elastic_ingest.connectors.es.errors import credentials_problem
from elastic_ingest.connectors.protocol.secrets import redact_uris


def describe_error(error: BaseException) -> str:
    """One line for the job document: the error's type and message, no traceback, no URI
    password (client errors like to quote the connection string)."""
    refused = credentials_problem(error)
    if refused:
        return refused
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    message = redact_uris(message)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
