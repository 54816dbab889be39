"""config.yml: every problem reported at once with its YAML path; secrets never printed."""

import pytest

from elastic_ingest.connectors.config import (
    SettingsError,
    config_file,
    load_settings,
    parse_settings,
)
from elastic_ingest.connectors.registry import registered_sources


def test_the_shipped_config_yml_is_valid():
    settings = load_settings()
    assert settings.bulk.operations_per_request == 500
    assert settings.sources == {}  # the built-in sources are entry points, not config
    assert {"mongodb", "s3", "directory"} <= set(registered_sources(settings.sources))


def test_five_mistakes_are_listed_together_with_their_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    file = tmp_path / "config.yml"
    file.write_text(
        "elasticsearch:\n"
        "  hosts: ['not a url']\n"
        "  request_timeout: soon\n"
        "bulk:\n"
        "  operations_per_request: 0\n"
        "  flush_every: 3\n"
        "service:\n"
        "  poll_interval: ${NOT_SET_ANYWHERE}\n"
    )
    with pytest.raises(SettingsError) as raised:
        load_settings(file)
    problems = raised.value.problems
    assert len(problems) == 5, problems
    joined = "\n".join(problems)
    paths = [
        "elasticsearch.hosts",
        "elasticsearch.request_timeout",
        "bulk.operations_per_request",
        "bulk.flush_every",
        "service.poll_interval",
    ]
    for path in paths:
        assert path in joined
    assert "unknown key" in joined and "NOT_SET_ANYWHERE is not set" in joined
    assert str(file) in str(raised.value)


def test_environment_references_are_expanded_with_defaults(monkeypatch):
    monkeypatch.setenv("ES_TEST_URL", "http://es.example:9200")
    settings = parse_settings(
        {"elasticsearch": {"hosts": ["${ES_TEST_URL}", "${UNSET_X:-http://other:9200}"]}}
    )
    assert settings.elasticsearch.hosts == ["http://es.example:9200", "http://other:9200"]


def test_secrets_do_not_appear_in_the_settings_repr():
    settings = parse_settings({"elasticsearch": {"api_key": "s3cr3t-key", "password": "hunter2"}})
    assert "s3cr3t-key" not in repr(settings) and "hunter2" not in repr(settings)
    assert settings.elasticsearch.api_key.get_secret_value() == "s3cr3t-key"


def test_unreadable_and_malformed_files_give_one_line_reasons(tmp_path):
    with pytest.raises(SettingsError, match="cannot read the file"):
        load_settings(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("elasticsearch: [unclosed\n")
    with pytest.raises(SettingsError, match="invalid YAML"):
        load_settings(bad)


def test_a_badly_formed_source_name_is_reported():
    with pytest.raises(SettingsError, match=r"sources.x: expected 'package.module:Class'"):
        parse_settings({"sources": {"x": "just-a-module"}})


def test_protocol_index_names_follow_elasticsearch_rules():
    with pytest.raises(SettingsError) as raised:
        parse_settings({"protocol": {"connectors_index": "Bad Index!", "jobs_index": "_jobs"}})
    joined = "\n".join(raised.value.problems)
    assert "protocol.connectors_index: index name 'Bad Index!' must be lowercase" in joined
    assert "protocol.jobs_index: index name '_jobs' cannot start with '_'" in joined


def test_the_configuration_file_is_found_by_one_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("ELASTIC_INGEST_CONFIG", raising=False)
    monkeypatch.setattr(
        "elastic_ingest.connectors.config.DEFAULT_CONFIG", tmp_path / "no-checkout.yml"
    )
    assert config_file() is None  # nothing anywhere: the built-in defaults
    assert {"mongodb", "s3", "directory"} <= set(registered_sources(load_settings().sources))

    user = tmp_path / "xdg" / "elastic-ingest" / "config.yml"
    user.parent.mkdir(parents=True)
    user.write_text("service: {poll_interval: 7}\n")
    assert load_settings().service.poll_interval == 7
    (tmp_path / "config.yml").write_text("service: {poll_interval: 8}\n")
    assert load_settings().service.poll_interval == 8
    named = tmp_path / "named.yml"
    named.write_text("service: {poll_interval: 9}\n")
    monkeypatch.setenv("ELASTIC_INGEST_CONFIG", str(named))
    assert load_settings().service.poll_interval == 9
    given = tmp_path / "given.yml"
    given.write_text("service: {poll_interval: 10}\n")
    assert load_settings(given).service.poll_interval == 10
