"""An S3 API server: moto's standalone server from PyPI."""

from __future__ import annotations

from devstack.common import (
    check_port_free,
    env_port,
    pid_file,
    port_open,
    read_pid,
    spawn,
    stack_dir,
    stop,
    venv_bin,
    wait_until,
)

NAME = "moto"


def port() -> int:
    return env_port("STACK_S3_PORT", 5000)


def url() -> str:
    return f"http://127.0.0.1:{port()}"


def up() -> str:
    pid = read_pid(pid_file(NAME))
    if pid and port_open(port()):
        return f"s3 (moto): running at {url()} (pid {pid}, reused)"
    check_port_free(port(), "s3 (moto)", "STACK_S3_PORT")
    log = stack_dir() / "moto" / "moto.log"
    pid = spawn(NAME, [venv_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port())], log)
    wait_until(lambda: port_open(port()), 30, "s3 (moto)", log, pid)
    return f"s3 (moto): started at {url()} (pid {pid})"


def down() -> str:
    return stop(NAME, "s3 (moto)")


def status() -> str:
    pid = read_pid(pid_file(NAME))
    return f"s3 (moto): running at {url()} (pid {pid})" if pid else "s3 (moto): stopped"
