"""The least Elasticsearch privileges the service needs: the role of its API key.

Every privilege is here because a named call needs it; README "Security" explains each and shows
how to create the key on your own cluster. Narrow `CONTENT_INDICES` to your connectors' index
names (e.g. `search-*`) when you can.
"""

from __future__ import annotations

from typing import Any

CONTENT_INDICES = "/@&~(\\..*)/"
"""Every index whose name does not begin with a dot (a Lucene regular expression): the targets
a connector may have (connectors/protocol/targets.py refuses hidden and system indices)."""

PROTOCOL_INDICES = ".elastic-connectors*"
ACCESS_CONTROL_INDICES = ".search-acl-filter-*"
FAILURE_INDICES = "elastic-ingest-failures*"  # service.failures_index, by default


def service_role(content_indices: str | list[str] = CONTENT_INDICES) -> dict[str, Any]:
    """The role descriptor of the service's API key."""
    names = [content_indices] if isinstance(content_indices, str) else list(content_indices)
    return {
        # monitor: the cluster's version and licence (document-level security needs a paid or
        # trial licence); read_pipeline: whether the ingest pipeline a connector names exists
        "cluster": ["monitor", "read_pipeline"],
        "indices": [
            {
                # the connectors and sync-jobs indices, created behind an alias on first start
                # (an alias on create needs `manage`)
                "names": [PROTOCOL_INDICES],
                "privileges": ["manage", "read", "write"],
            },
            {
                # content indices and the identities of document-level security: created when
                # missing, read (snapshot, diff), written (bulk), refreshed (`maintenance`),
                # resolved through aliases; `delete_index` only for `connector delete
                # --delete-index`; and the failures index (records of documents not written)
                "names": [*names, ACCESS_CONTROL_INDICES, FAILURE_INDICES],
                "privileges": [
                    "create_index",
                    "read",
                    "write",
                    "maintenance",
                    "view_index_metadata",
                    "delete_index",
                ],
            },
        ],
    }
