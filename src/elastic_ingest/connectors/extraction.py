"""Text of binary files (PDF, Office, OpenDocument, RTF, HTML, e-mail) for a document's `body`.

kreuzberg parses in worker processes: the event loop keeps running, a file over its time limit is
stopped by killing its worker (a thread cannot be stopped), and a parser crash costs one file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePath

MIME_TYPES = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".doc": "application/msword",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".xls": "application/vnd.ms-excel",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".rtf": "application/rtf",
    ".html": "text/html",
    ".htm": "text/html",
    ".eml": "message/rfc822",
    ".msg": "application/vnd.ms-outlook",
}  # .odp is missing: kreuzberg 4.10.4 answers "Unsupported format" for OpenDocument slides
EXTRACTABLE_SUFFIXES = frozenset(MIME_TYPES)
_LINE_BREAKS = re.compile(r"\s*[\n\r\f\v]\s*")
_BLANKS = re.compile(r"[^\S\n]+")
_ROOT = str(Path(__file__).resolve().parents[2])  # where a worker finds the package


def is_extractable(name: str) -> bool:
    """Whether the file's suffix names a format we extract text from."""
    return PurePath(name).suffix.lower() in EXTRACTABLE_SUFFIXES


def reduce_whitespace(text: str) -> str:
    """Blank runs become one space, runs holding a line break one "\\n" (lines stay lines)."""
    return _BLANKS.sub(" ", _LINE_BREAKS.sub("\n", text)).strip()


def _cpu_count() -> int:
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return max(1, len(usable) if usable else os.cpu_count() or 1)


@dataclass(frozen=True)
class ExtractionLimits:
    max_bytes: int = 10 * 1024 * 1024  # larger files are not extracted
    timeout_seconds: float = 30.0  # per file
    workers: int = field(default_factory=_cpu_count)  # worker processes, started when needed


@dataclass(frozen=True)
class Extracted:
    text: str | None  # None when extraction failed or was refused
    error: str | None  # one line saying why


class _Worker:
    """One `python -m elastic_ingest.connectors.extraction` process: a request line + bytes
    in, a reply out."""

    def __init__(self, process: asyncio.subprocess.Process):
        self.process = process

    @classmethod
    async def start(cls) -> _Worker:
        path = os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", __name__, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=1 << 20, env={**os.environ, "PYTHONPATH": path},
        )  # fmt: skip
        if await process.stdout.readline() != b"ready\n":  # kreuzberg imported: outside timeouts
            code = await process.wait()
            raise RuntimeError(f"the extraction worker exited at start (exit code {code})")
        return cls(process)

    async def extract(self, mime: str, data: bytes) -> tuple[str, bool]:
        self.process.stdin.write(b"%s %d\n" % (mime.encode(), len(data)))
        self.process.stdin.write(data)
        await self.process.stdin.drain()
        status, size = (await self.process.stdout.readline()).split()
        payload = (await self.process.stdout.readexactly(int(size))).decode()
        return payload, status == b"ok"

    async def stop(self) -> int:
        """Kill the worker unless it has ended, and reap it: its exit code."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        return await self.process.wait()


class Extractor:
    """Extracts text with at most `limits.workers` files in flight; `close()` ends the workers."""

    def __init__(self, limits: ExtractionLimits = ExtractionLimits()):
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.workers)
        self._idle: list[_Worker] = []

    async def extract(self, data: bytes, name: str) -> Extracted:
        """The file's text as kreuzberg gives it (whitespace untouched), or why there is none."""
        suffix = PurePath(name).suffix.lower()
        if suffix not in MIME_TYPES:
            return Extracted(None, f"no text extraction for {suffix or 'a name without suffix'}")
        if len(data) > self.limits.max_bytes:
            limit = f"{self.limits.max_bytes / 2**20:.1f} MiB extraction limit"
            return Extracted(None, f"file is {len(data) / 2**20:.1f} MiB, over the {limit}")
        async with self._slots:
            return await self._in_worker(data, suffix)

    async def _in_worker(self, data: bytes, suffix: str) -> Extracted:
        worker = self._idle.pop() if self._idle else await _Worker.start()
        try:
            async with asyncio.timeout(self.limits.timeout_seconds):
                payload, ok = await worker.extract(MIME_TYPES[suffix], data)
        except TimeoutError:
            await worker.stop()
            return Extracted(None, f"extraction took longer than {self.limits.timeout_seconds:g} s")
        except (OSError, ValueError, asyncio.IncompleteReadError):  # it ended mid-file
            with contextlib.suppress(TimeoutError):  # killing it now would hide its exit code
                await asyncio.wait_for(worker.process.wait(), 5)
            return Extracted(None, f"the extraction process died (exit code {await worker.stop()})")
        except BaseException:  # cancelled mid-file: nobody waits for this file any more
            await worker.stop()
            raise
        self._idle.append(worker)
        if ok:
            return Extracted(payload, None)
        return Extracted(None, f"corrupt or unsupported {suffix[1:].upper()}: {payload}")

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().stop()


def _reason(error: BaseException) -> str:
    """kreuzberg's message on one line, without its class prefix or its repeated second half."""
    message = str(error).removeprefix(f"{type(error).__name__}: ") or type(error).__name__
    parts = message.splitlines()[0].split(": ")
    half = len(parts) // 2
    return ": ".join(parts[:half] if parts[:half] == parts[half:] else parts)[:300]


def _serve() -> None:
    """The worker's loop: extract each request from stdin until stdin closes."""
    import kreuzberg

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when its workers stop
    requests, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print from a library must not corrupt the replies
    config = kreuzberg.ExtractionConfig(use_cache=False)
    replies.write(b"ready\n")
    replies.flush()
    while header := requests.readline():
        mime, size = header.decode().split()
        data = requests.read(int(size))
        try:
            status, text = b"ok", kreuzberg.extract_bytes_sync(data, mime, config).content
        except BaseException as error:  # pyo3 turns a Rust panic into a BaseException
            status, text = b"error", _reason(error)
        payload = text.encode(errors="replace")
        replies.write(b"%s %d\n" % (status, len(payload)) + payload)
        replies.flush()


if __name__ == "__main__":
    _serve()
