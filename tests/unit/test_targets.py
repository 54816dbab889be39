"""Which indices a connector may sync into: valid names, never the protocol's own or hidden ones."""

import pytest

from elastic_ingest.connectors.config import ProtocolSettings
from elastic_ingest.connectors.protocol.targets import resolved_problem, target_problem

PROTOCOL = ProtocolSettings(connectors_index="my-connectors", jobs_index=".my-jobs")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("my-connectors", "connector protocol's own documents"),
        ("my-connectors-v1", "connector protocol's own documents"),
        (".my-jobs", "connector protocol's own documents"),
        (".elastic-connectors", "hidden or system index"),
        (".search-acl-filter-docs", "hidden or system index"),
        ("Bad Index!", "must be lowercase"),
        ("bad index", "contains ' '"),
        ("_underscore", "cannot start with '_'"),
        ("", "no index name"),
        (None, "no index name"),
        ("x" * 256, "longer than 255 bytes"),
    ],
)
def test_refused_targets_say_why(name, reason):
    assert reason in target_problem(name, PROTOCOL)


def test_ordinary_names_are_fine_and_aliases_are_judged_by_what_they_point_to():
    assert target_problem("products", PROTOCOL) is None
    assert target_problem("my-connectors2", PROTOCOL) is None
    assert resolved_problem("products", ["products"], PROTOCOL) is None
    assert "is an alias of 'my-connectors-v1'" in resolved_problem(
        "products", ["my-connectors-v1"], PROTOCOL
    )
