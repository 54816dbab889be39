"""What a job does with documents beyond comparing versions, settled once when it starts: its
sync rules (checked again), its ingest pipeline (checked to exist) and text extraction."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from elastic_ingest.connectors.config import ExtractionSettings
from elastic_ingest.connectors.es.client import ESClient
from elastic_ingest.connectors.es.pipelines import pipeline_exists
from elastic_ingest.connectors.job_inputs import ELASTIC_DEFAULT_PIPELINES, JobInputs, JobSetupError
from elastic_ingest.connectors.source import BaseDataSource
from elastic_ingest.connectors.sync_rules import SyncRules, filter_problems

if TYPE_CHECKING:
    from elastic_ingest.connectors.extraction import Extractor

logger = logging.getLogger(__name__)


def checked_rules(inputs: JobInputs, source_class: type[BaseDataSource]) -> SyncRules:
    """The job's active sync rules, validated again: a job never runs with invalid rules."""
    advanced = (
        source_class.advanced_rules_problems if source_class.supports_advanced_rules() else None
    )
    errors = filter_problems(inputs.rules_filter, advanced)
    if errors:
        messages = "; ".join(m for error in errors for m in error["messages"])
        raise JobSetupError(f"connector {inputs.connector_id}: invalid sync rules: {messages}")
    return SyncRules.of(inputs.rules_filter)


async def ingest_pipeline(es: ESClient, inputs: JobInputs) -> str | None:
    """The pipeline every bulk request names, checked before anything is written."""
    name = inputs.pipeline.name
    if not name or await pipeline_exists(es, name):
        return name
    if name in ELASTIC_DEFAULT_PIPELINES:
        logger.info(
            "connector %s: Elastic's default pipeline %s is not in this cluster; documents are "
            "written without it (this service extracts text itself)",
            inputs.connector_id,
            name,
        )
        return None
    raise JobSetupError(
        f"connector {inputs.connector_id}: ingest pipeline {name!r} does not exist in "
        "Elasticsearch; create it, or change the connector's pipeline.name"
    )


def extractor_for(inputs: JobInputs, settings: ExtractionSettings) -> Extractor | None:
    """Text extraction for the job's binary files, if its pipeline asks for it (loaded only
    then: the library is large)."""
    if not inputs.pipeline.extract_binary_content:
        return None
    from elastic_ingest.connectors.extraction import ExtractionLimits, Extractor

    return Extractor(
        ExtractionLimits(
            max_bytes=settings.max_bytes,
            timeout_seconds=settings.timeout_seconds,
            workers=settings.workers or ExtractionLimits().workers,
        )
    )
