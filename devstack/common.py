"""Shared plumbing for the stack services: directories, PID files, ports, waiting."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


class StackError(RuntimeError):
    """A one-line, actionable reason why a service could not be started."""


def stack_dir() -> Path:
    """Root of downloads, data, logs and PID files; shared by all checkouts on this machine."""
    configured = os.environ.get("ELASTIC_INGEST_STACK_DIR")
    if configured:
        path = Path(configured)
    elif os.geteuid() == 0:
        path = Path("/var/lib/elastic-ingest")
    else:
        path = Path.home() / ".local" / "state" / "elastic-ingest"
    path.mkdir(parents=True, exist_ok=True)
    return path


def env_port(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    if not value.isdigit():
        raise StackError(f"{name}={value!r} is not a port number")
    return int(value)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def pid_file(name: str) -> Path:
    run = stack_dir() / "run"
    run.mkdir(exist_ok=True)
    return run / f"{name}.pid"


def read_pid(path: Path) -> int | None:
    """The PID recorded in `path` if that process is still alive."""
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def check_port_free(port: int, service: str, env_name: str) -> None:
    if port_open(port):
        raise StackError(
            f"{service}: port {port} is held by a process this stack did not start; "
            f"stop it or choose another port with {env_name}=<port>"
        )


def spawn(name: str, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    """Start a detached process (own session) with output to `log_path`, record its PID in the
    PID file `name` (what `stop` reads), and return the PID."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    pid_file(name).write_text(str(process.pid))
    return process.pid


def wait_until(
    ready: Callable[[], bool], timeout: float, service: str, log_path: Path, pid: int | None = None
) -> None:
    """Poll `ready` until it is true; on timeout or early exit, raise with the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if pid is not None and not _alive(pid):
            raise StackError(f"{service} exited during startup; log tail:\n{tail(log_path)}")
        time.sleep(0.5)
    raise StackError(f"{service} not ready after {timeout:.0f}s; log tail:\n{tail(log_path)}")


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"


def stop(name: str, service: str) -> str:
    """Stop the process recorded in the PID file: SIGTERM, wait, SIGTERM again, then SIGKILL."""
    path = pid_file(name)
    pid = read_pid(path)
    if pid is None:
        path.unlink(missing_ok=True)
        return f"{service}: not running"
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if not _alive(pid):
            break
    path.unlink(missing_ok=True)
    return f"{service}: stopped (pid {pid})"


def venv_bin(command: str) -> str:
    """Path of a console script installed next to the running interpreter."""
    return str(Path(sys.executable).parent / command)


def ensure_system_user(name: str) -> pwd.struct_passwd | None:
    """The dedicated system user a server runs as when we are root (Elasticsearch and
    PostgreSQL refuse root), created once; None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
        )
    return pwd.getpwnam(name)


def apt_install(package: str, service: str) -> None:
    """Install a Debian package a service needs (root only); StackError in one line if not."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError(f"{service}: needs the Debian package `{package}`; install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", package]
    result = subprocess.run(install, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise StackError(f"{service}: `apt-get install {package}` failed: {reason[0]}")
