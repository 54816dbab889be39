"""The access-control sync's stage of a JobRun, and where document-level security may run:
only on a source that supports it, for a connector that turned it on."""

from __future__ import annotations

from elastic_ingest.connectors.access_control import (
    acl_index,
    content_index,
    dls_enabled,
    identity_document,
)
from elastic_ingest.connectors.es.access_control import (
    access_control_field,
    ensure_identities_index,
)
from elastic_ingest.connectors.es.indices import ensure_content_index
from elastic_ingest.connectors.job_inputs import JobSetupError
from elastic_ingest.connectors.protocol import JobType
from elastic_ingest.connectors.sync import index_listed


class AccessControlStages:
    """JobRun's access-control stage and checks, mixed into JobRun."""

    async def _map_access_control(self, index: str) -> str | None:
        """With document-level security on, the keyword field identities are matched on."""
        if not self.source.dls_enabled:
            return None
        return await access_control_field(self.es, index)

    async def write_identities(self) -> dict:
        """Access control: every user the source lists, with the identities they hold, into
        the content index's `.search-acl-filter-` index (unchanged users are not rewritten)."""
        content = content_index(self.inputs.index_name)
        await self._check_target(content)
        await ensure_content_index(self.es, content)
        field = await access_control_field(self.es, content)
        identities = acl_index(content)
        await ensure_identities_index(self.es, identities)
        await self._snapshot_of(identities)
        users = (identity_document(user, field) async for user in self.source.get_access_control())
        try:
            await index_listed(
                self.source,
                users,
                self._snapshot,
                self._writer(identities),
                self.progress,
                self.check_in,
            )
        finally:
            await self._refresh_quietly()
        return self.progress.report()

    def _check_access_control(self, source_class) -> None:
        """Document-level security only where the source can do it and the connector asks."""
        asked = dls_enabled(self.inputs.values())
        if (asked or self.kind == JobType.ACCESS_CONTROL) and not source_class.supports_dls():
            raise JobSetupError(
                f"connector {self.inputs.connector_id}: {source_class.name} does not support "
                "document level security (features.document_level_security is off); turn off "
                "use_document_level_security"
                if asked
                else f"connector {self.inputs.connector_id}: {source_class.name} does not "
                "support document level security, so it has no access-control sync"
            )
        if self.kind == JobType.ACCESS_CONTROL and not asked:
            raise JobSetupError(
                f"connector {self.inputs.connector_id}: document level security is off "
                "(configuration use_document_level_security): nothing to sync for access control"
            )
