"""Explicit mappings for the two protocol indices, created when missing."""

from __future__ import annotations

from connectors.config import ProtocolSettings
from connectors.es.client import ESClient
from connectors.es.indices import ensure_index

_OPAQUE = {"type": "object", "enabled": False}
_DATE = {"type": "date"}
_KEYWORD = {"type": "keyword"}
_LONG = {"type": "long"}
_NAME = {"type": "text", "fields": {"keyword": {"type": "keyword"}}}

CONNECTOR_MAPPINGS = {
    "dynamic": False,
    "properties": {
        "service_type": _KEYWORD,
        "index_name": _KEYWORD,
        "name": _NAME,
        "description": {"type": "text"},
        "language": _KEYWORD,
        "status": _KEYWORD,
        "error": {"type": "text"},
        "configuration": _OPAQUE,
        "scheduling": _OPAQUE,
        "sync_now": {"type": "boolean"},
        "last_seen": _DATE,
        "last_synced": _DATE,
        "last_sync_status": _KEYWORD,
        "last_sync_error": {"type": "text"},
        "last_indexed_document_count": _LONG,
        "last_deleted_document_count": _LONG,
        "last_sync_scheduled_at": _DATE,
        "sync_locked_at": _DATE,
        "sync_cursor": _OPAQUE,
        "pipeline": _OPAQUE,
        "filtering": _OPAQUE,
        "features": _OPAQUE,
        "api_key_id": _KEYWORD,
    },
}

JOB_MAPPINGS = {
    "dynamic": False,
    "properties": {
        "connector": {
            "properties": {
                "id": _KEYWORD,
                "service_type": _KEYWORD,
                "index_name": _KEYWORD,
                "language": _KEYWORD,
                "configuration": _OPAQUE,
                "filtering": _OPAQUE,
                "pipeline": _OPAQUE,
                "sync_cursor": _OPAQUE,
            }
        },
        "job_type": _KEYWORD,
        "trigger_method": _KEYWORD,
        "status": _KEYWORD,
        "error": {"type": "text"},
        "created_at": _DATE,
        "started_at": _DATE,
        "last_seen": _DATE,
        "completed_at": _DATE,
        "cancelation_requested_at": _DATE,
        "canceled_at": _DATE,
        "worker_hostname": _KEYWORD,
        "indexed_document_count": _LONG,
        "indexed_document_volume": _LONG,
        "deleted_document_count": _LONG,
        "total_document_count": _LONG,
        "metadata": {"properties": {"flow_run_id": _KEYWORD}, "dynamic": False},
    },
}


async def ensure_protocol_indices(es: ESClient, settings: ProtocolSettings) -> None:
    """Create both indices with explicit mappings when missing; existing ones are used as is."""
    single_shard = {"number_of_shards": 1, "auto_expand_replicas": "0-1"}
    await ensure_index(es, settings.connectors_index, CONNECTOR_MAPPINGS, single_shard)
    await ensure_index(es, settings.jobs_index, JOB_MAPPINGS, single_shard)
