"""`elastic-ingest worker`: a Prefect process worker whose flow runs start as forks of a warm
process (workers/forkserver.py) instead of new interpreters. Runs, states, logs, cancellation,
retries and the UI are Prefect's, as with `prefect worker start`: only how the run's process
comes to be differs. A work pool whose job template sets its own `command` is served the
Prefect way.

It leans on Prefect's runner internals (the executor a process worker uses), which is why
Prefect's version is pinned; the warm-worker tests of tests/integration/test_scale_out.py fail
on a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import orjson
from prefect.flows import load_flow_from_flow_run
from prefect.runner._flow_run_executor import FlowRunExecutorContext
from prefect.runner._process_manager import ProcessHandle
from prefect.settings import get_current_settings
from prefect.utilities.processutils import sanitize_subprocess_env
from prefect.workers.process import ProcessWorker, ProcessWorkerResult

UNKNOWN_EXIT = -1
"""The exit code of a child whose fork server ended before it did (nobody saw its end)."""


@dataclass
class ForkedChild:
    """A flow run's process, as Prefect's process handle wants to see it."""

    pid: int
    returncode: int | None = None


class ForkServer:
    """The worker's side of the fork server: start it, ask for a run, learn when each ends."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ready = asyncio.Event()
        self._starting: dict[str, asyncio.Future[int]] = {}
        self._ends: dict[int, asyncio.Future[int]] = {}
        self._lock = asyncio.Lock()
        self._reader_task: asyncio.Task | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def _ensure_started(self) -> None:
        async with self._lock:
            if self._process is not None and self._process.returncode is None:
                return
            ours, theirs = socket.socketpair()
            self._ready = asyncio.Event()
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "elastic_ingest.workers.forkserver",
                str(theirs.fileno()),
                pass_fds=[theirs.fileno()],
            )
            theirs.close()
            reader, self._writer = await asyncio.open_connection(sock=ours)
            self._reader_task = asyncio.create_task(self._read(reader))
            await self._ready.wait()
            if self._process.returncode is not None:
                raise RuntimeError(f"fork server exited with {self._process.returncode}")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                message = orjson.loads(line)
                if message.get("ready"):
                    self._ready.set()
                elif "pid" in message:
                    self._ends[message["pid"]] = asyncio.get_running_loop().create_future()
                    starting = self._starting.pop(message["run"], None)
                    if starting is not None and not starting.done():
                        starting.set_result(message["pid"])
                elif "exited" in message:
                    end = self._ends.pop(message["exited"], None)
                    if end is not None and not end.done():
                        end.set_result(message["code"])
        finally:
            self._ready.set()  # a server that died while starting: nobody waits forever
            gone = RuntimeError("the fork server ended")
            for starting in self._starting.values():
                if not starting.done():
                    starting.set_exception(gone)
            self._starting.clear()
            for pid, end in self._ends.items():  # orphans now: watch them by pid
                asyncio.create_task(_watch_orphan(pid, end))
            self._ends.clear()

    async def fork(self, flow_run_id: str, env: dict[str, str], cwd: str) -> int:
        """Start the flow run in a child of the warm process; its pid."""
        await self._ensure_started()
        started = asyncio.get_running_loop().create_future()
        self._starting[flow_run_id] = started
        request = {"run": flow_run_id, "env": env, "cwd": cwd}
        self._writer.write(orjson.dumps(request) + b"\n")
        await self._writer.drain()
        return await started

    async def exit_code(self, pid: int) -> int:
        """Wait for the child's end; its exit code as Popen gives it (-N: killed by signal N)."""
        end = self._ends.get(pid)
        return await end if end is not None else UNKNOWN_EXIT

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await asyncio.wait_for(self._process.wait(), 10)
            if self._process.returncode is None:
                self._process.kill()
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)


async def _watch_orphan(pid: int, end: asyncio.Future[int]) -> None:
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            end.set_result(UNKNOWN_EXIT)
            return
        await asyncio.sleep(1)


class ForkStarter:
    """Starts a flow run as a fork of the warm process, with the environment Prefect's own
    engine-command starter would give `python -m prefect.engine`."""

    def __init__(self, forks: ForkServer, cwd: Path, env: dict[str, Any], control_channel):
        self._forks, self._cwd, self._env = forks, cwd, env
        self._control_channel = control_channel

    def _environment(self, flow_run) -> dict[str, str]:
        control: dict[str, str] = {}
        try:
            port, token = self._control_channel.register(flow_run.id)
            control = {"PREFECT__CONTROL_PORT": str(port), "PREFECT__CONTROL_TOKEN": token}
        except RuntimeError:
            pass  # no control channel: cancellation falls back to killing the process
        env: dict[str, Any] = {**os.environ, **self._env}
        env.update(get_current_settings().to_environment_variables(exclude_unset=True))
        env.update(
            {
                "PREFECT__FLOW_RUN_ID": str(flow_run.id),
                "PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS": "false",
                "PREFECT__DEPLOYMENT_NAME": self._env.get("PREFECT__DEPLOYMENT_NAME"),
                **control,
            }
        )
        return {key: str(value) for key, value in sanitize_subprocess_env(env).items()}

    async def start(
        self,
        flow_run,
        task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        environment = self._environment(flow_run)
        try:
            pid = await self._forks.fork(str(flow_run.id), environment, str(self._cwd))
        except BaseException:
            self._control_channel.unregister(flow_run.id)
            raise
        child = ForkedChild(pid)
        task_status.started(ProcessHandle(child))
        child.returncode = await self._forks.exit_code(pid)


with warnings.catch_warnings():  # it serves `process` pools: Prefect says its type is taken
    warnings.simplefilter("ignore", UserWarning)

    class WarmProcessWorker(ProcessWorker):
        """Serves `process` work pools like Prefect's process worker, forking runs from warm,
        with one executor context (API client, cancellation watch, control channel) for all its
        runs instead of one per run, as Prefect's own runner does."""

        _description = "Runs each flow run as a fork of a warm, pre-imported process."

        async def setup(self) -> None:
            await super().setup()
            self._forks = ForkServer()
            self._resources = contextlib.AsyncExitStack()
            self._executors = await self._resources.enter_async_context(FlowRunExecutorContext())

        async def teardown(self, *exc_info: Any) -> None:
            try:
                await self._resources.aclose()
                await self._forks.close()
            finally:
                await super().teardown(*exc_info)

        async def run(self, flow_run, configuration, task_status=None) -> ProcessWorkerResult:
            if configuration._command_configured:  # the pool asks for a command of its own
                return await super().run(flow_run, configuration, task_status)
            task_status = task_status or anyio.TASK_STATUS_IGNORED
            working_dir = (
                contextlib.nullcontext(configuration.working_dir)
                if configuration.working_dir
                else tempfile.TemporaryDirectory(suffix="prefect")
            )
            with working_dir as cwd:
                starter = ForkStarter(
                    self._forks,
                    Path(cwd).resolve(),
                    configuration.env,
                    self._executors.control_channel,
                )
                executor = self._executors.create_executor(
                    flow_run,
                    starter,
                    resolve_flow=load_flow_from_flow_run,
                    propose_submitting=False,
                )
                execution = await executor.submit(task_status=_PidOnly(task_status))
            if execution is None or execution.status_code is None:
                raise RuntimeError("Failed to start flow run process.")
            return ProcessWorkerResult(
                status_code=execution.status_code, identifier=str(execution.handle.pid)
            )


class _PidOnly:
    """Hands the worker the pid of the process handle the executor reports started."""

    def __init__(self, task_status):
        self._task_status = task_status

    def started(self, handle: ProcessHandle) -> None:
        self._task_status.started(handle.pid)


async def serve(pool: str, name: str | None, limit: int | None) -> None:
    """Poll `pool` for flow runs until stopped (Ctrl-C, SIGTERM), as `prefect worker start`."""
    worker = WarmProcessWorker(work_pool_name=pool, name=name, limit=limit)
    await worker.start(printer=lambda line: print(line, flush=True))
