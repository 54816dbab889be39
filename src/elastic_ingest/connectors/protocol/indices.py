"""The two protocol indices, shaped as Elasticsearch's own templates shape them (so Kibana reads
what we write): a `-v1` concrete index behind an alias of the configured name, `dynamic: false`,
statuses and errors as keywords. Indices that already exist (made by those templates, or by
Kibana) are used as they are."""

from __future__ import annotations

from elastic_ingest.connectors.config import ProtocolSettings
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.indices import ensure_aliased_index
from elastic_ingest.connectors.es.transport import ApiError

_OBJECT = {"type": "object", "dynamic": False}
_OPAQUE = {"type": "object", "enabled": False}
_DATE = {"type": "date"}
_KEYWORD = {"type": "keyword"}
_LONG = {"type": "long"}
_INTEGER = {"type": "integer"}
_BOOLEAN = {"type": "boolean"}

CONNECTOR_MAPPINGS = {
    "dynamic": False,
    "properties": {
        "api_key_id": _KEYWORD,
        "api_key_secret_id": _KEYWORD,
        "configuration": _OBJECT,
        "custom_scheduling": _OBJECT,
        "description": {"type": "text"},
        "error": _KEYWORD,
        "features": _OBJECT,
        "filtering": _OBJECT,
        "index_name": _KEYWORD,
        "is_native": _BOOLEAN,
        "language": _KEYWORD,
        "last_access_control_sync_error": _KEYWORD,
        "last_access_control_sync_scheduled_at": _DATE,
        "last_access_control_sync_status": _KEYWORD,
        "last_deleted_document_count": _LONG,
        "last_incremental_sync_scheduled_at": _DATE,
        "last_indexed_document_count": _LONG,
        "last_seen": _DATE,
        "last_sync_error": _KEYWORD,
        "last_sync_scheduled_at": _DATE,
        "last_sync_status": _KEYWORD,
        "last_synced": _DATE,
        "name": _KEYWORD,
        "pipeline": {
            "properties": {
                "extract_binary_content": _BOOLEAN,
                "name": _KEYWORD,
                "reduce_whitespace": _BOOLEAN,
                "run_ml_inference": _BOOLEAN,
            }
        },
        "scheduling": _OBJECT,
        "service_type": _KEYWORD,
        "status": _KEYWORD,
        "sync_cursor": _OPAQUE,
        "sync_now": _BOOLEAN,
        # ours: the lock time of a running job, the generation of the latest claim, and when
        # the source was last checked
        "sync_locked_at": _DATE,
        "last_checked_at": _DATE,
        "sync_generation": _LONG,
    },
}

JOB_MAPPINGS = {
    "dynamic": False,
    "properties": {
        "cancelation_requested_at": _DATE,
        "canceled_at": _DATE,
        "completed_at": _DATE,
        "connector": {
            "properties": {
                "configuration": _OBJECT,
                "filtering": _OBJECT,
                "id": _KEYWORD,
                "index_name": _KEYWORD,
                "language": _KEYWORD,
                "pipeline": _OBJECT,
                "service_type": _KEYWORD,
                "sync_cursor": _OPAQUE,
            }
        },
        "created_at": _DATE,
        "deleted_document_count": _INTEGER,
        "error": _KEYWORD,
        "indexed_document_count": _INTEGER,
        "indexed_document_volume": _INTEGER,
        "job_type": _KEYWORD,
        "last_seen": _DATE,
        "metadata": {"type": "object", "dynamic": False, "properties": {"flow_run_id": _KEYWORD}},
        "started_at": _DATE,
        "status": _KEYWORD,
        "total_document_count": _INTEGER,
        "trigger_method": _KEYWORD,
        "worker_hostname": _KEYWORD,
    },
}


class ProtocolIndexRefused(PermissionError):
    """Elasticsearch would not create a missing protocol index; the message says what to do."""


async def ensure_protocol_indices(es: ESClient, settings: ProtocolSettings) -> None:
    """Create both indices (`<name>-v1` behind the alias `<name>`) when neither exists; an
    existing one, maybe a system index Elasticsearch manages, is never created, changed or
    refreshed."""
    es = es.as_connectors_product()
    for name, mappings in (
        (settings.connectors_index, CONNECTOR_MAPPINGS),
        (settings.jobs_index, JOB_MAPPINGS),
    ):
        try:
            await ensure_aliased_index(es, name, mappings, _index_settings(name))
        except ApiError as error:
            if error.status not in (400, 403):
                raise
            raise ProtocolIndexRefused(
                f"Elasticsearch refused to create the protocol index {name} ({error.status} "
                f"{error.error}: {str(error.message).splitlines()[0]}); create it as an "
                "administrator, or name another index under `protocol:` in config.yml"
            ) from None


def _index_settings(name: str) -> dict:
    """One shard; hidden when the name begins with a dot, as Elastic's own protocol indices are
    (Elasticsearch deprecates visible dot-indices)."""
    settings: dict = {"number_of_shards": 1, "auto_expand_replicas": "0-1"}
    if name.startswith("."):
        settings["index.hidden"] = True
    return settings
