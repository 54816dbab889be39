"""The poll pass's one line about its connectors stays one short line, however many there are."""

from elastic_ingest.tasks.poll_tasks import status_summary


def test_connected_connectors_are_counted_and_the_others_named():
    statuses = {f"c{i}": "connected" for i in range(28)} | {"bad1": "error", "bad2": "error"}
    assert status_summary(statuses) == "28 connected, 2 error (bad1, bad2)"


def test_many_connectors_in_one_status_name_only_the_first_few():
    statuses = {f"n{i}": "needs_configuration" for i in range(300)}
    line = status_summary(statuses)
    assert line == "300 needs_configuration (n0, n1, n2, n3, n4, ...)"


def test_no_connectors():
    assert status_summary({}) == "none"
