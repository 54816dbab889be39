"""The job counters as the protocol (and Kibana) read them."""

from elastic_ingest.connectors.engine.progress import MIB, SyncProgress


def test_job_volume_is_reported_in_whole_mib():
    assert SyncProgress(volume=3 * MIB + 100).job_counters()["indexed_document_volume"] == 3
    assert SyncProgress(volume=MIB // 3).job_counters()["indexed_document_volume"] == 0
