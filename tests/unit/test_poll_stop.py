"""A SIGTERM reaches the poll loop as Prefect's TerminationSignal, bare or wrapped in an exception
group by a task group it went through (seen: anyio's connect inside an HTTP request); both are a
stop request, anything else is an error."""

import signal

from prefect.exceptions import TerminationSignal

from elastic_ingest.flows.poll import is_termination


def test_a_bare_or_grouped_termination_signal_is_a_stop():
    sigterm = TerminationSignal(signal=signal.SIGTERM)
    assert is_termination(sigterm)
    assert is_termination(BaseExceptionGroup("connect", [sigterm]))
    assert is_termination(BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [sigterm])]))


def test_other_errors_are_not_a_stop():
    sigterm = TerminationSignal(signal=signal.SIGTERM)
    assert not is_termination(None)
    assert not is_termination(RuntimeError("boom"))
    assert not is_termination(BaseExceptionGroup("mixed", [sigterm, RuntimeError("boom")]))
