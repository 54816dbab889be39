"""FerretDB 1.x (MongoDB wire protocol, SQLite backend), built from the Go module proxy."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from devstack.common import (
    StackError,
    check_port_free,
    env_port,
    pid_file,
    port_open,
    read_pid,
    spawn,
    stack_dir,
    stop,
    wait_until,
)

VERSION = "v1.24.2"  # the last release line with the SQLite backend
MODULE = "github.com/FerretDB/FerretDB"
NAME = "ferretdb"


def port() -> int:
    return env_port("STACK_MONGO_PORT", 27017)


def url() -> str:
    return f"mongodb://127.0.0.1:{port()}/"


def binary() -> Path:
    return stack_dir() / "bin" / f"ferretdb-{VERSION}"


def _build() -> Path:
    """`go install` alone panics at startup (no generated version file), so build a scratch copy."""
    target = binary()
    if target.exists():
        return target
    if shutil.which("go") is None:
        raise StackError("ferretdb: Go is needed to build FerretDB; install Go >= 1.22")
    download = subprocess.run(
        ["go", "mod", "download", "-json", f"{MODULE}@{VERSION}"], capture_output=True, text=True
    )
    if download.returncode != 0:
        raise StackError(f"ferretdb: go mod download failed: {download.stdout[-1000:]}")
    import json

    source = Path(json.loads(download.stdout)["Dir"])
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "ferretdb"
        shutil.copytree(source, copy)
        for path in copy.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        (copy / "build" / "version" / "version.txt").write_text(VERSION + "\n")
        build = subprocess.run(
            ["go", "build", "-o", str(target), "./cmd/ferretdb"],
            cwd=copy,
            capture_output=True,
            text=True,
        )
        if build.returncode != 0:
            raise StackError(f"ferretdb: go build failed:\n{build.stderr[-2000:]}")
    return target


def up() -> str:
    pid = read_pid(pid_file(NAME))
    if pid and port_open(port()):
        return f"ferretdb: running at {url()} (pid {pid}, reused)"
    check_port_free(port(), "ferretdb", "STACK_MONGO_PORT")
    executable = _build()
    data = stack_dir() / "ferretdb" / "data"
    state = stack_dir() / "ferretdb" / "state"
    data.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    log = stack_dir() / "ferretdb" / "ferretdb.log"
    pid = spawn(
        NAME,
        [
            str(executable),
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            f"--listen-addr=127.0.0.1:{port()}",
            "--debug-addr=-",
            "--telemetry=disable",
            f"--state-dir={state}",
            "--log-level=WARN",
        ],
        log,
        env={"GOMAXPROCS": os.environ.get("GOMAXPROCS", "2")},
    )
    wait_until(lambda: port_open(port()), 30, "ferretdb", log, pid)
    return f"ferretdb: started at {url()} (pid {pid})"


def down() -> str:
    return stop(NAME, "ferretdb")


def status() -> str:
    pid = read_pid(pid_file(NAME))
    if pid and port_open(port()):
        return f"ferretdb: running at {url()} (pid {pid})"
    return "ferretdb: stopped"
