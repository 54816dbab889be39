"""Prefect retries only transient failures: never a configuration or source mistake."""

from prefect.states import Failed

from elastic_ingest.connectors.job.setup import JobSetupError
from elastic_ingest.connectors.source import SourceError
from elastic_ingest.tasks.runtime import transient_only


def test_network_trouble_is_retried_and_mistakes_are_not():
    assert transient_only(None, None, Failed(data=TimeoutError("slow")))
    assert transient_only(None, None, Failed(data=ConnectionRefusedError("refused")))
    assert not transient_only(None, None, Failed(data=SourceError("folder does not exist")))
    assert not transient_only(None, None, Failed(data=JobSetupError("unknown service type")))
    assert not transient_only(None, None, Failed(data=ValueError("bad value")))
