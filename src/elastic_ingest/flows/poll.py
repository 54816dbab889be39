"""Flow `poll`: one pass of the service; `python -m flows.poll` loops over passes.

A pass: heartbeat + publish configuration schemas, turn `sync_now` and due schedules into jobs,
fail stale jobs, claim pending jobs, and launch one `sync` run per claimed job: through the
`sync/<service_type>` deployment when it exists (a work pool spreads runs over machines),
in this process otherwise.

The long-running loop runs its passes plainly, not as flow runs: Prefect's history then holds
the syncs, not a `poll` run every 30 seconds. The `poll/service` deployment runs a pass as a
flow run (a scheduled pass on a work pool).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from prefect import flow, tags
from prefect.client.orchestration import get_client
from prefect.context import AsyncClientContext
from prefect.exceptions import TerminationSignal

from elastic_ingest.connectors.config import SettingsError, load_settings
from elastic_ingest.connectors.errors import describe_error
from elastic_ingest.connectors.es.client import check_reachable, create_client
from elastic_ingest.connectors.metrics import ServiceMetrics
from elastic_ingest.connectors.poll import suspend_unstarted
from elastic_ingest.connectors.protocol import protocol_for
from elastic_ingest.flows.launch import (
    crash_runs_of,
    free_slots,
    job_tags,
    launch_through_deployments,
)
from elastic_ingest.flows.sync import sync
from elastic_ingest.tasks.poll_tasks import (
    claim_jobs,
    create_due_jobs,
    fail_stale_jobs,
    heartbeat_and_publish,
)
from elastic_ingest.tasks.runtime import flow_runtime

logger = logging.getLogger("elastic-ingest.poll")


async def run_in_process(job: dict, config_file: str | None):
    """One `sync` flow run in this process, named and tagged after its job."""
    with tags(*job_tags(job)):
        return await sync(
            job["job_id"],
            job["connector_id"],
            job["service_type"],
            config_file,
            job["claim"],
            job.get("job_type", "full"),
            return_state=True,
        )


async def _steps(capacity: int, plain: bool) -> dict:
    """The steps of a pass, in order, on the current runtime; `plain` calls the tasks'
    functions directly, so no task runs are recorded."""

    def step(task):
        return task.fn if plain else task

    result = {
        "connectors": await step(heartbeat_and_publish)(),
        "created": await step(create_due_jobs)(),
        "stale": await step(fail_stale_jobs)(),
    }
    if result["stale"]:
        await crash_runs_of(result["stale"])
    return {**result, "claimed": await step(claim_jobs)(capacity)}


async def _capacity(settings, in_process: int) -> int:
    """Jobs to claim in a pass: a work pool's free slots when syncs launch on one that has a
    concurrency limit, else what this process may still run."""
    return await free_slots(in_process) if settings.service.use_deployments else in_process


async def _launch(claimed: list[dict], settings, config_file: str | None) -> list[dict]:
    """Launch the claimed jobs through deployments; return those to run in this process."""
    if settings.service.use_deployments:
        return await launch_through_deployments(claimed, config_file)
    return claimed


@flow(name="poll", flow_run_name="poll-pass")
async def poll(
    config_file: str | None = None, capacity: int | None = None, run_here: bool = True
) -> dict:
    """One pass. With `run_here`, in-process syncs run before the pass returns; otherwise the
    caller runs the returned `in_process` jobs in the background."""
    async with flow_runtime(config_file) as runtime:
        settings = runtime.settings
        if capacity is None:
            capacity = await _capacity(settings, settings.service.max_concurrent_syncs)
        result = await _steps(capacity, plain=False)
    local = await _launch(result["claimed"], settings, config_file)
    if run_here and local:
        limit = asyncio.Semaphore(settings.service.max_concurrent_syncs)

        async def bounded(job):
            async with limit:
                return await run_in_process(job, config_file)

        await asyncio.gather(*(bounded(job) for job in local))
    return {**result, "in_process": local}


async def poll_forever(config_file: str | None, once: bool = False) -> int:
    """Loop over passes until SIGINT/SIGTERM; running syncs then end `suspended`.

    While a flow runs, Prefect replaces the SIGTERM handler with one that raises
    TerminationSignal wherever the main thread is; that too is treated as a stop request.
    """
    settings = load_settings(config_file)
    metrics = _metrics(settings.metrics.address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    running: dict[asyncio.Task, dict] = {}  # in-process sync -> its job
    unsettled: dict[str, str] = {}  # job id -> claim, until its sync ended normally

    def finished(task: asyncio.Task) -> None:
        job = running.pop(task)
        if task.cancelled():
            return
        if is_termination(task.exception()):
            stop.set()
        elif task.exception() is None:
            unsettled.pop(job["job_id"], None)

    problem: str | None = None
    try:
        while not stop.is_set():
            capacity = settings.service.max_concurrent_syncs - len(running)
            jobs, now_wrong = await _one_pass(settings, config_file, capacity, metrics)
            if metrics is not None:
                metrics.pass_ended(now_wrong)
            if now_wrong != problem:  # one line when an outage starts, one when it ends
                if now_wrong:
                    logger.error(
                        "%s; retrying every %.0fs", now_wrong, settings.service.poll_interval
                    )
                else:
                    logger.info("the poll pass works again")
                problem = now_wrong
            for job in jobs:
                unsettled[job["job_id"]] = job["claim"]
                task = asyncio.create_task(run_in_process(job, config_file))
                running[task] = job
                task.add_done_callback(finished)
            if once:
                if running:
                    await asyncio.wait(set(running))
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.service.poll_interval)
    except BaseException as error:
        if not is_termination(error):
            raise
        stop.set()
    finally:
        await _stop_syncs(running)
        await _suspend_unstarted(settings, unsettled)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    if stop.is_set():
        logger.info("poll loop stopped; running syncs were suspended")
    return 1 if once and problem else 0  # a loop ends on request; a single pass reports


async def _observe(metrics: ServiceMetrics, runtime) -> None:
    """Refresh the metrics from the protocol indices; a failure costs only fresh metrics."""
    try:
        await metrics.observe(*runtime.protocol)
    except Exception as error:
        logger.warning("metrics not refreshed this pass: %s", describe_error(error))


def _metrics(address: str) -> ServiceMetrics | None:
    """The metrics endpoint, when `metrics.address` names one (SystemExit in one line when the
    address cannot be listened on)."""
    if not address:
        return None
    metrics = ServiceMetrics()
    try:
        metrics.serve(address)
    except OSError as error:
        message = f"error: metrics.address {address}: cannot listen ({error.strerror})"
        raise SystemExit(message) from None
    logger.info("metrics at http://%s/metrics", address)
    return metrics


async def _one_pass(
    settings, config_file: str | None, capacity: int, metrics: ServiceMetrics | None = None
) -> tuple[list, str | None]:
    """Run one pass plainly; return the jobs to run here, or a one-line problem. An outage of
    Elasticsearch or of the Prefect server is a problem to wait out, not a reason to exit, and
    no job is claimed while either is away (a claimed job must be able to run)."""
    es = create_client(settings.elasticsearch)
    try:
        await check_reachable(es, settings.elasticsearch.hosts)
    except ConnectionError as error:
        return [], str(error)
    finally:
        await es.close()
    # One Prefect client for the whole pass: each client Prefect builds loads a CA bundle
    # (~23 ms of CPU), and a pass would build one per deployment read and per run launched.
    try:
        async with AsyncClientContext.get_or_create():
            return await _claim_and_launch(settings, config_file, capacity, metrics)
    except Exception as error:  # opening it asks the server's version once: it may be away
        return [], f"the Prefect server does not answer ({describe_error(error)})"


async def _claim_and_launch(
    settings, config_file: str | None, capacity: int, metrics: ServiceMetrics | None
) -> tuple[list, str | None]:
    try:
        async with get_client() as client:
            unhealthy = await client.api_healthcheck()
    except Exception as error:
        unhealthy = error
    if unhealthy is not None:
        return [], f"the Prefect server does not answer ({describe_error(unhealthy)})"
    try:
        async with flow_runtime(config_file) as runtime:
            capacity = await _capacity(runtime.settings, capacity)
            claimed = (await _steps(capacity, plain=True))["claimed"]
            if metrics is not None:
                await _observe(metrics, runtime)
            return await _launch(claimed, runtime.settings, config_file), None
    except Exception as error:
        return [], f"poll pass failed: {describe_error(error)}"


async def _suspend_unstarted(settings, claims: dict[str, str]) -> None:
    """Jobs this loop claimed whose sync never started (stopped in between) go back to
    `suspended`, to be picked up again, instead of waiting for the stale-job sweep."""
    if not claims:
        return
    es = create_client(settings.elasticsearch)
    try:
        _, jobs = protocol_for(es, settings)
        await suspend_unstarted(jobs, claims)
    except Exception as error:  # stopping anyway: the stale-job sweep is the fallback
        logger.warning("could not release claimed jobs: %s", describe_error(error))
    finally:
        await es.close()


def is_termination(error: BaseException | None) -> bool:
    """Prefect's SIGTERM handler raised here: TerminationSignal itself, or wrapped in an
    exception group by a task group it went through (anyio's connect in an HTTP request)."""
    if isinstance(error, BaseExceptionGroup):
        return error.split(TerminationSignal)[1] is None
    return isinstance(error, TerminationSignal)


async def _stop_syncs(running: dict[asyncio.Task, dict]) -> None:
    """Cancel in-process syncs; each marks its job `suspended` before it ends (and leaves
    `running` through its done callback)."""
    for task in list(running):
        task.cancel()
    while running:
        try:
            await asyncio.wait(set(running))
        except BaseException as error:
            if not is_termination(error):
                raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m elastic_ingest.flows.poll", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "-c", "--config-file", help="configuration file (default: as elastic-ingest -c)"
    )
    parser.add_argument("--once", action="store_true", help="run a single pass and exit")
    args = parser.parse_args(argv)
    try:
        load_settings(args.config_file)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per HTTP request otherwise
    return run_poll_loop(args.config_file, once=args.once)


class _NoTracebacks(logging.Filter):
    """Console lines without tracebacks: each failure already says what went wrong in one line;
    the Prefect UI keeps the traceback (its handler runs before this one), `--debug` shows it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


def quiet_console_tracebacks() -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(_NoTracebacks())


def run_poll_loop(config_file: str | None, once: bool = False, debug: bool = False) -> int:
    """Run `poll_forever` to its end. A SIGTERM that Prefect's handler turned into
    TerminationSignal outside any task still stops cleanly: asyncio.run cancels every task,
    and each in-process sync marks its job `suspended` on the way out."""
    logger.setLevel(logging.DEBUG if debug else logging.INFO)  # Prefect's root is at WARNING
    if not debug:
        quiet_console_tracebacks()
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per HTTP request otherwise
    try:
        return asyncio.run(poll_forever(config_file, once=once), debug=debug)
    except BaseException as error:
        if not is_termination(error):
            raise
        logger.info("poll loop stopped by SIGTERM; running syncs were suspended")
        return 0


if __name__ == "__main__":
    sys.exit(main())
