"""Elasticsearch security for the stack: the `elastic` password (one for every node), the trial
licence, the service's least-privilege API key (one per node). Secrets live in files of mode 0600
and are never printed or logged."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devstack import es_node
from devstack.common import StackError, stack_dir
from elastic_ingest.connectors.es.privileges import service_role

SUPERUSER = "elastic"
KEY_NAME = "elastic-ingest-service"
PASSWORD_FILE = "elastic-password"
KEY_FILE = "service-api-key"
ROLE_DIGEST_FILE = "service-api-key.role-sha256"


def secret_path(name: str) -> Path:
    """The password is the stack's; a key belongs to the node (cluster) that made it."""
    if name == PASSWORD_FILE:
        return stack_dir() / "elasticsearch" / name
    return es_node.node_dir() / name


def _read(name: str) -> str | None:
    """A stored value, or None when it is missing or this user may not read it."""
    try:
        return secret_path(name).read_text().strip() or None
    except OSError:
        return None


def _write(name: str, value: str) -> None:
    """Replace a stored value atomically, readable by its owner only from the first byte on."""
    path = secret_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(f"{value}\n")
    os.replace(temporary, path)


def ensure_password() -> str:
    """The `elastic` password, generated once per stack directory."""
    password = _read(PASSWORD_FILE)
    if password is None:
        password = secrets.token_urlsafe(24)
        _write(PASSWORD_FILE, password)
    return password


def superuser() -> tuple[str, str]:
    """("elastic", password): the stack's superuser, for tests and tools that administer ES."""
    password = _read(PASSWORD_FILE)
    if password is None:
        raise StackError(
            f"elasticsearch: no readable superuser password at {secret_path(PASSWORD_FILE)}; "
            "start the stack first: python -m devstack up elasticsearch"
        )
    return SUPERUSER, password


def service_api_key() -> str | None:
    """The service's API key (the `encoded` form for `Authorization: ApiKey`), once created."""
    return _read(KEY_FILE)


def basic_authorization() -> str | None:
    """The superuser's `Authorization` header value, or None before the first install."""
    password = _read(PASSWORD_FILE)
    if password is None:
        return None
    return "Basic " + base64.b64encode(f"{SUPERUSER}:{password}".encode()).decode()


def request(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    authorization: str | None = None,
    timeout: float = 10,
) -> tuple[int, Any]:
    """One JSON call; HTTP errors come back as (status, body) so the caller decides.
    Raises OSError only when nothing (or something other than HTTP) answers."""
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    data = None if body is None else json.dumps(body).encode()
    call = urllib.request.Request(base_url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(call, timeout=timeout) as response:
            return response.status, _json(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _json(error.read())
    except http.client.HTTPException as error:
        raise ConnectionError(f"{base_url}: not an HTTP answer ({type(error).__name__})") from None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def _reason(status: int, body: Any) -> str:
    """A short server-side reason for an error message (ES error bodies hold no secrets)."""
    error = body.get("error") if isinstance(body, dict) else None
    reason = error.get("reason") if isinstance(error, dict) else error
    return f"HTTP {status}" + (f": {reason}" if reason else "")


def write_keystore(home: Path, user: str | None, env: dict[str, str]) -> None:
    """Hand the password to ES as `bootstrap.password`: it becomes `elastic`'s password as long
    as the cluster has none yet (a fresh or a pre-security data directory), else is ignored."""
    tool = [str(home / "bin" / "elasticsearch-keystore")]
    if user:
        tool = ["runuser", "-u", user, "--", *tool]
    if not (home / "config" / "elasticsearch.keystore").exists():
        _keystore([*tool, "create"], None, env, home)
    _keystore([*tool, "add", "-x", "-f", "bootstrap.password"], ensure_password(), env, home)


def _keystore(command: list[str], stdin: str | None, env: dict[str, str], home: Path) -> None:
    result = subprocess.run(
        command,
        input=None if stdin is None else f"{stdin}\n",
        env=env,
        capture_output=True,
        text=True,
        cwd=home,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-1500:]
        raise StackError(f"elasticsearch: `elasticsearch-keystore {command[-1]}` failed:\n{output}")


def check_superuser(base_url: str) -> None:
    """Fail in one line when the node refuses the stored password (its data has another)."""
    status, body = request(base_url, "GET", "/_security/_authenticate", None, basic_authorization())
    if status == 401:
        raise StackError(
            f"elasticsearch: the node refuses the `elastic` password in "
            f"{secret_path(PASSWORD_FILE)} (its data has another one); restore that file, or "
            f"write into it the one `bin/elasticsearch-reset-password -u elastic -a -s --url "
            f"{base_url}` prints (as the service user, with ES_JAVA_HOME set)"
        )
    if status != 200:
        raise StackError(f"elasticsearch: cannot authenticate as elastic ({_reason(status, body)})")


def _licence(base_url: str, timeout: float = 30) -> dict[str, Any]:
    """The cluster's licence; a new cluster answers 404 until it has generated its basic one."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = request(base_url, "GET", "/_license", None, basic_authorization())
        if status == 200 and "license" in body:
            return body["license"]
        if status != 404 or time.monotonic() > deadline:
            raise StackError(f"elasticsearch: cannot read the licence ({_reason(status, body)})")
        time.sleep(0.5)


def ensure_trial(base_url: str) -> str:
    """Document-level security needs a trial (or paid) licence: start the trial on `basic`."""
    licence = _licence(base_url)
    if licence.get("type") != "basic":
        return f"licence {licence.get('type')} ({licence.get('status')})"
    path = "/_license/start_trial?acknowledge=true"
    status, body = request(base_url, "POST", path, None, basic_authorization())
    if status == 200 and body.get("trial_was_started"):
        return "licence trial (started now)"
    return "licence basic: the trial was used up, no document-level security (new data dir fixes)"


def role_digest() -> str:
    """The digest of the current service role, stored with the key to notice a changed role."""
    canonical = json.dumps(service_role(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _key_works(base_url: str, key: str) -> bool:
    """Whether the stored key still authenticates: only a 401 (invalidated, expired, or from
    another cluster) retires it; a node that cannot answer now is an error, not a reason."""
    status, body = request(base_url, "GET", "/_security/_authenticate", None, f"ApiKey {key}")
    if status == 401:
        return False
    if status != 200:
        reason = _reason(status, body)
        raise StackError(f"elasticsearch: cannot check the service API key ({reason})")
    return body.get("api_key", {}).get("name") == KEY_NAME


def ensure_service_key(base_url: str) -> str:
    """Keep the stored key while it authenticates and carries the current role, else replace it."""
    key = service_api_key()
    if key is None:
        reason = "created"
    elif _read(ROLE_DIGEST_FILE) != role_digest():
        reason = "recreated (service_role() changed)"
    elif not _key_works(base_url, key):
        reason = "recreated (the stored one no longer authenticates)"
    else:
        return "service API key kept"
    _invalidate_keys(base_url)
    _create_key(base_url)
    return f"service API key {reason}"


def _invalidate_keys(base_url: str) -> None:
    """Retire every earlier key of that name: lost, stale, or carrying an older role."""
    body = {"name": KEY_NAME}
    status, answer = request(base_url, "DELETE", "/_security/api_key", body, basic_authorization())
    if status not in (200, 404):
        reason = _reason(status, answer)
        raise StackError(f"elasticsearch: cannot invalidate old service keys ({reason})")


def _create_key(base_url: str) -> None:
    body = {"name": KEY_NAME, "role_descriptors": {KEY_NAME: service_role()}}
    status, answer = request(base_url, "POST", "/_security/api_key", body, basic_authorization())
    if status != 200 or "encoded" not in answer:
        reason = _reason(status, answer)
        raise StackError(f"elasticsearch: cannot create the service API key ({reason})")
    _write(KEY_FILE, answer["encoded"])
    _write(ROLE_DIGEST_FILE, role_digest())


def secure(base_url: str) -> str:
    """After the node is ready: superuser works, trial licence, a current service key."""
    check_superuser(base_url)
    return f"{ensure_trial(base_url)}; {ensure_service_key(base_url)}"
