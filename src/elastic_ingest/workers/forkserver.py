"""A warm process that forks one child per flow run: Prefect and the service are imported once,
here, and every sync starts as a copy of it (milliseconds and a few MB of its own, instead of a
new interpreter's ~1.5 CPU-seconds and ~115 MB). Each child is still a process of its own: a
crash of one sync never touches another, and killing its pid stops exactly that run.

The worker (workers/warm.py) starts this module with one end of a socket pair, its file
descriptor as the argument, and speaks JSON lines over it:

    -> {"run": "<flow run id>", "env": {...}, "cwd": "/tmp/..."}    start one run
    <- {"run": "<flow run id>", "pid": 1234}                        its child's pid
    <- {"exited": 1234, "code": -9}                                 a child ended (Popen-style)

It must stay single-threaded until it forks (a fork copies one thread only): it imports, it
never calls Prefect. It exits when the worker closes the socket.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import runpy
import selectors
import signal
import socket
import sys
import threading
import warnings
from importlib.metadata import entry_points
from pathlib import Path

import orjson

from elastic_ingest.workers.api_ca import lighter_api_ca, unused_ca_file

PRELOADED = (
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.flows",
    "elastic_ingest.flows.sync",
    "elastic_ingest.flows.poll",
    # what a sync run still imported on its own (its sys.modules against this process's)
    "prefect.task_engine",
    "prefect.utilities.visualization",
    "prefect.concurrency._sync",
    "prefect._internal.observers",
    "prefect._internal._observation_delivery",
    "anyio._backends._asyncio",
    "anyio.streams.memory",
    "anyio.streams.stapled",
    "anyio.streams.tls",
    "rich._emoji_codes",
)
REAP_SECONDS = 0.2


def preload() -> list[str]:
    """Import what every sync imports, and the installed sources; what cannot be imported is
    left to the child (it then fails as an unforked run would, with its own message)."""
    modules = [*PRELOADED]
    modules += [point.value.split(":")[0] for point in entry_points(group="elastic_ingest.sources")]
    problems = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - reported, the child will say it again
            problems.append(f"{name}: {error}")
    _complete_models()
    gc.collect()
    gc.freeze()  # imported objects stay out of the collector's way: their pages stay shared
    return problems


def _complete_models() -> None:
    """Build the validators of the pydantic models that wait for their first use: every run
    would otherwise build the same ones again, in its own memory (~5 MB here, shared)."""
    from pydantic import BaseModel

    pending = [BaseModel]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        if not model.__dict__.get("__pydantic_complete__", True):
            with contextlib.suppress(Exception):  # one it cannot build is built on use, as before
                model.model_rebuild()


def serve(channel: socket.socket) -> dict | None:
    """Answer requests until the worker goes away (None), or return a request in the child."""
    selector = selectors.DefaultSelector()
    selector.register(channel, selectors.EVENT_READ)
    pending = b""
    while True:
        if selector.select(timeout=REAP_SECONDS):
            data = channel.recv(65536)
            if not data:
                return None
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = orjson.loads(line)
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    channel.close()
                    return request
                channel.sendall(orjson.dumps({"run": request["run"], "pid": pid}) + b"\n")
        _reap(channel)


def _reap(channel: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        channel.sendall(orjson.dumps({"exited": pid, "code": code}) + b"\n")


def run_flow(request: dict, api_ca_file: Path | None) -> None:
    """In the child: become the flow run's process, as `python -m prefect.engine` would be."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.update(lighter_api_ca(os.environ, api_ca_file))
    if request.get("cwd"):
        os.chdir(request["cwd"])
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()  # the run's settings, not the ones this process started with
    sys.argv = ["prefect.engine", request["run"]]
    with warnings.catch_warnings():  # it is imported already, here on purpose
        warnings.filterwarnings("ignore", "'prefect.engine' found in sys.modules", RuntimeWarning)
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)


def main() -> None:
    channel = socket.socket(fileno=int(sys.argv[1]))
    # The worker's Ctrl-C reaches its whole process group: this process ends when the worker
    # closes the channel, and each child handles its own signals.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for problem in preload():
        print(f"fork server: could not preload {problem}", file=sys.stderr, flush=True)
    if threading.active_count() > 1:  # a fork would copy a process with threads half-held
        names = ", ".join(thread.name for thread in threading.enumerate())
        print(f"fork server: threads running after imports ({names})", file=sys.stderr)
        sys.exit(3)
    api_ca_file = unused_ca_file()
    channel.sendall(b'{"ready": true}\n')
    request = serve(channel)
    if request is not None:
        # the child: it exits as the engine decides, atexit hooks and all
        run_flow(request, api_ca_file)


if __name__ == "__main__":
    main()
