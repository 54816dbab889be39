"""The stack points the user's own `prefect` commands at its server (a Prefect profile), so
`prefect deployment run ...` typed in a shell finds the deployments instead of starting a
throwaway server; a profile that already names a server is left active."""

import os
import subprocess

import pytest

from devstack import prefect_server
from tests.integration.private_prefect import PREFECT


def prefect_setting(home, name):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    shown = subprocess.run(
        [PREFECT, "config", "view"],
        env={**env, "PREFECT_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return next((line for line in shown.splitlines() if line.startswith(f"{name}=")), None)


@pytest.fixture
def home(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("PREFECT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    return tmp_path


def test_a_fresh_prefect_home_is_pointed_at_the_stack(home):
    assert "now uses profile" in prefect_server.configure_profile()
    assert prefect_setting(home, "PREFECT_API_URL") == (
        f"PREFECT_API_URL='{prefect_server.api_url()}' (from profile)"
    )
    assert prefect_server.configure_profile() is None  # idempotent: nothing left to do


def test_a_profile_that_names_a_server_stays_active(home):
    (home / "profiles.toml").write_text(
        'active = "mine"\n\n[profiles.mine]\nPREFECT_API_URL = "http://prefect.example:4200/api"\n'
    )
    assert "prefect profile use elastic-ingest" in prefect_server.configure_profile()
    assert "prefect.example" in prefect_setting(home, "PREFECT_API_URL")


def test_a_second_stack_on_another_port_gets_its_own_profile(home, monkeypatch):
    """Two checkouts with their own stacks: neither rewrites the other's profile."""
    monkeypatch.delenv("STACK_PREFECT_PORT", raising=False)
    assert "now uses profile 'elastic-ingest'" in prefect_server.configure_profile()
    monkeypatch.setenv("STACK_PREFECT_PORT", "4300")
    second = prefect_server.configure_profile()
    assert "profile 'elastic-ingest-4300' points at http://127.0.0.1:4300/api" in second
    assert "prefect profile use elastic-ingest-4300" in second  # said, not switched
    assert "127.0.0.1:4200/api" in prefect_setting(home, "PREFECT_API_URL")
