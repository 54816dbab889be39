"""What may be shown of a configuration: sensitive fields never, URI passwords never."""

from elastic_ingest.connectors.job.setup import with_secrets
from elastic_ingest.connectors.protocol.secrets import (
    is_redacted,
    redact_uris,
    redacted_configuration,
    shown,
)


def test_uri_userinfo_is_redacted_wherever_it_appears():
    assert redact_uris("mongodb://reader:hunter2@db:27017/shop") == (
        "mongodb://reader:********@db:27017/shop"
    )
    assert redact_uris("see https://TOKEN123@git.example.com/x and ftp://h/y") == (
        "see https://********@git.example.com/x and ftp://h/y"
    )
    assert redact_uris("mongodb://db:27017") == "mongodb://db:27017"


def test_sensitive_comes_from_the_source_schema_or_the_flag():
    configuration = {
        "password": {"label": "Password", "value": "hunter2"},  # seed era: no flag
        "token": {"value": "abc", "sensitive": True},
        "host": {"value": "mongodb://u:p@h"},
        "hosts": {"value": ["mongodb://u:p@h1", "mongodb://h2"]},
        "empty": {"value": "", "sensitive": True},
    }
    shown_configuration = redacted_configuration(configuration, frozenset({"password"}))
    values = {name: spec["value"] for name, spec in shown_configuration.items()}
    assert values == {
        "password": "********",
        "token": "********",
        "host": "mongodb://u:********@h",
        "hosts": ["mongodb://u:********@h1", "mongodb://h2"],
        "empty": "",
    }
    assert "hunter2" not in str(shown_configuration)
    assert shown_configuration["password"]["label"] == "Password"


def test_a_job_takes_only_its_redacted_values_from_the_live_connector():
    live = {"password": {"value": "hunter2"}, "host": {"value": "mongodb://u:p@h"}}
    snapshot = {
        "password": {"value": "********"},
        "host": {"value": "mongodb://u:********@h"},
        "database": {"value": "shop"},
    }
    resolved = with_secrets(snapshot, live)
    assert resolved["password"]["value"] == "hunter2"
    assert resolved["host"]["value"] == "mongodb://u:p@h"
    assert resolved["database"]["value"] == "shop"  # the snapshot wins for everything else
    assert is_redacted(shown("secret", True)) and not is_redacted("plain")


def test_error_lines_never_quote_a_uri_password():
    from elastic_ingest.connectors.errors import describe_error

    error = ConnectionError("cannot reach mongodb://reader:hunter2@db:27017 (timed out)\nmore")
    assert describe_error(error) == (
        "ConnectionError: cannot reach mongodb://reader:********@db:27017 (timed out)"
    )
