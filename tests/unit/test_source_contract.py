"""BaseDataSource configuration: defaults, type conversion, every bad field named."""

import pytest

from elastic_ingest.connectors.source import BaseDataSource, ConfigField, ConfigurationError


class Example(BaseDataSource):
    name = "Example"
    CONFIGURATION = {
        "host": ConfigField("Host", required=True),
        "port": ConfigField("Port", type="int", default=27017),
        "tls": ConfigField("TLS", type="bool", default=False),
        "buckets": ConfigField("Buckets", type="list", default=[]),
        "password": ConfigField("Password", sensitive=True),
    }


def test_defaults_and_conversions():
    source = Example({"host": "h", "port": "1234", "tls": "true", "buckets": "a, b"})
    assert source.config == {
        "host": "h",
        "port": 1234,
        "tls": True,
        "buckets": ["a", "b"],
        "password": None,
    }


def test_protocol_shaped_values_are_accepted():
    assert Example({"host": {"value": "h", "label": "Host"}}).config["host"] == "h"


def test_every_bad_field_is_named():
    with pytest.raises(ConfigurationError) as raised:
        Example.validate_configuration(
            {"port": "many", "tls": "perhaps", "colour": "red"}, strict=True
        )
    problems = " | ".join(raised.value.problems)
    for field in (
        "host: missing value",
        "port: expected int",
        "tls: expected true or false",
        "colour: unknown field",
    ):
        assert field in problems


def test_the_published_schema_has_the_protocol_shape():
    schema = Example.configuration_schema()
    assert schema["password"]["sensitive"] is True
    assert schema["port"]["default_value"] == 27017 and schema["port"]["order"] == 2
    assert {
        "label",
        "value",
        "type",
        "required",
        "display",
        "tooltip",
        "options",
        "depends_on",
        "validations",
    } <= set(schema["host"])


def test_a_required_field_with_a_default_is_satisfied_by_the_default():
    class WithDefault(BaseDataSource):
        CONFIGURATION = {"host": ConfigField("Host", required=True, default="localhost")}

    assert WithDefault({}).config == {"host": "localhost"}
    assert WithDefault.is_configured({})


def test_fields_written_by_other_tools_are_kept_out_but_do_not_fail_a_connector(caplog):
    class WithAlias(Example):
        ALIASES = {"ssl_enabled": "tls", "secret": "password"}

    source = WithAlias({"host": "h", "ssl_enabled": "true", "datetime_conversion": "DATETIME"})
    assert source.config["tls"] is True
    assert "ignores configuration field 'datetime_conversion'" in caplog.text
    assert WithAlias.sensitive_fields() == {"password", "secret"}
    with pytest.raises(ConfigurationError, match="datetime_conversion: unknown field"):
        WithAlias.validate_configuration({"host": "h", "datetime_conversion": "x"}, strict=True)


def test_a_bad_secret_is_reported_without_its_value():
    class WithSecretNumber(BaseDataSource):
        CONFIGURATION = {"pin": ConfigField("PIN", type="int", sensitive=True)}

    with pytest.raises(ConfigurationError) as raised:
        WithSecretNumber({"pin": "hunter2"})
    assert raised.value.problems == ["pin: expected int"]
