"""The one-CA file a warm worker's sync processes give Prefect's clients of a plain-HTTP API."""

import ssl

from elastic_ingest.workers.api_ca import SETTING, lighter_api_ca, unused_ca_file


def test_the_file_loads_as_exactly_one_ca():
    context = ssl.create_default_context(cafile=str(unused_ca_file()))
    assert context.cert_store_stats()["x509_ca"] == 1
    assert unused_ca_file() == unused_ca_file()  # written once, then reused


def test_only_a_plain_http_api_with_no_tls_choice_gets_it():
    ca = unused_ca_file()
    plain = {"PREFECT_API_URL": "http://127.0.0.1:4200/api"}
    assert lighter_api_ca(plain, ca) == {SETTING: str(ca)}
    assert lighter_api_ca({"PREFECT_API_URL": "https://prefect.example/api"}, ca) == {}
    assert lighter_api_ca({}, ca) == {}  # no API URL: Prefect decides (an ephemeral server)
    own = {"PREFECT_API_URL": "http://127.0.0.1:4200/api", SETTING: "/etc/ssl/mine.pem"}
    assert lighter_api_ca(own, ca) == {}
    skip = {"PREFECT_API_URL": "http://h/api", "PREFECT_API_TLS_INSECURE_SKIP_VERIFY": "True"}
    assert lighter_api_ca(skip, ca) == {}
    assert lighter_api_ca(plain, None) == {}  # no file could be written: Prefect's own way


def test_a_temporary_folder_it_cannot_write_leaves_prefect_its_own_way(tmp_path, monkeypatch):
    blocked = tmp_path / "read-only"
    blocked.write_text("a file where the folder would go")
    monkeypatch.setattr("tempfile.tempdir", str(blocked))
    assert unused_ca_file() is None
