"""Our Extractor against kreuzberg's own batch API over the same PDF and DOCX files (target ≥ 0.8).

`python -m bench.extraction --files 300`: no services needed. Each side runs twice, alternating;
the best run counts. Both sides get the files as bytes, with kreuzberg's result cache off.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import tempfile
import time
from pathlib import Path

import docx
from fpdf import FPDF

from elastic_ingest.connectors.extraction import MIME_TYPES, ExtractionLimits, Extractor

TARGET_BYTES = 100_000  # per file: 19 pages of PDF, 300 paragraphs of DOCX


def write_files(folder: Path, files: int, seed: int = 12) -> list[Path]:
    """Half PDF, half DOCX, ~100 KB each, of random words (so they compress like prose)."""
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwyp"
    vocabulary = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(5000)]
    paths = []
    for index in range(files):
        if index % 2 == 0:
            document = FPDF()
            document.set_font("Helvetica", size=9)
            for _ in range(19):
                document.add_page()
                for _ in range(60):
                    document.cell(text=" ".join(rng.choices(vocabulary, k=16)))
                    document.ln(4.5)
            data, suffix = bytes(document.output()), ".pdf"
        else:
            document, buffer = docx.Document(), io.BytesIO()
            for _ in range(300):
                document.add_paragraph(" ".join(rng.choices(vocabulary, k=60)))
            document.save(buffer)
            data, suffix = buffer.getvalue(), ".docx"
        paths.append(folder / f"file{index:05d}{suffix}")
        paths[-1].write_bytes(data)
    return paths


def direct(contents: list[bytes], names: list[str], workers: int) -> tuple[float, int]:
    """kreuzberg's batch API in this process, as many extractions at once as we have workers."""
    import kreuzberg

    config = kreuzberg.ExtractionConfig(use_cache=False, max_concurrent_extractions=workers)
    mimes = [MIME_TYPES[Path(name).suffix] for name in names]
    started = time.perf_counter()
    results = kreuzberg.batch_extract_bytes_sync(contents, mimes, config)
    return time.perf_counter() - started, sum(len(result.content) for result in results)


async def ours(extractor: Extractor, contents: list[bytes], names: list[str]) -> tuple[float, int]:
    """Every file handed to the Extractor at once, as the sync would."""
    started = time.perf_counter()
    results = await asyncio.gather(*map(extractor.extract, contents, names))
    elapsed = time.perf_counter() - started
    assert all(result.error is None for result in results), [r.error for r in results if r.error]
    return elapsed, sum(len(result.text) for result in results)


def worker_peak_rss_mib() -> int:
    """The largest peak RSS (VmHWM) among this process's extraction workers, from /proc."""
    peaks = [0]
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            if b"connectors.extraction" in Path(f"/proc/{pid}/cmdline").read_bytes():
                status = Path(f"/proc/{pid}/status").read_text()
                peaks.append(int(status.split("VmHWM:")[1].split()[0]) // 1024)
    return max(peaks)


async def measure(files: int) -> dict:
    """Both sides over the same files; seconds are the best of two alternating runs."""
    limits = ExtractionLimits()
    with tempfile.TemporaryDirectory(prefix="bench-extraction-") as folder:
        paths = write_files(Path(folder), files)
        contents, names = [path.read_bytes() for path in paths], [path.name for path in paths]
    megabytes = sum(map(len, contents)) / 1e6
    extractor = Extractor(limits)
    await asyncio.gather(*map(extractor.extract, contents[:8], names[:8]))  # workers started
    direct(contents[:8], names[:8], limits.workers)  # kreuzberg imported and warm
    runs: dict[str, list[float]] = {"direct": [], "ours": []}
    characters = {}
    try:
        for _ in range(2):
            seconds, characters["direct"] = direct(contents, names, limits.workers)
            runs["direct"].append(seconds)
            seconds, characters["ours"] = await ours(extractor, contents, names)
            runs["ours"].append(seconds)
        worker_peak = worker_peak_rss_mib()
    finally:
        await extractor.close()
    assert characters["direct"] == characters["ours"], characters
    result: dict = {"files": files, "megabytes": round(megabytes, 1), "workers": limits.workers}
    for side, seconds in runs.items():
        best = min(seconds)
        result[side] = {
            "seconds": round(best, 3),
            "files_per_s": round(files / best, 1),
            "mb_per_s": round(megabytes / best, 2),
        }
    result["ratio"] = round(result["ours"]["files_per_s"] / result["direct"]["files_per_s"], 2)
    result["worker_peak_rss_mib"] = worker_peak
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.extraction")
    parser.add_argument("--files", type=int, default=300)
    result = asyncio.run(measure(parser.parse_args().files))
    print(
        f"{result['files']} files, {result['megabytes']} MB (PDF + DOCX), "
        f"{result['workers']} workers"
    )
    for side, label in (("direct", "kreuzberg batch, one process"), ("ours", "Extractor")):
        numbers = result[side]
        print(
            f"  {label:<30} {numbers['files_per_s']:>7} files/s {numbers['mb_per_s']:>7} MB/s"
            f"  ({numbers['seconds']} s, best of 2)"
        )
    print(f"  ours/direct: {result['ratio']} (target ≥ 0.8); "
          f"peak worker RSS {result['worker_peak_rss_mib']} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
