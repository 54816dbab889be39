"""Text extraction with the real kreuzberg: documents are written here, each with a word to find;
limits (size, time, workers) are checked through what a caller sees, and the worker processes."""

import asyncio
import email.message
import io
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import docx
import openpyxl
import pptx
import pytest
from fpdf import FPDF

from elastic_ingest.connectors.extraction import (
    EXTRACTABLE_SUFFIXES,
    Extracted,
    ExtractionLimits,
    Extractor,
    is_extractable,
    reduce_whitespace,
)

PROJECT = Path(__file__).resolve().parents[2]


def pdf(word: str) -> bytes:
    document = FPDF()
    document.add_page()
    document.set_font("Helvetica", size=12)
    document.cell(text=f"a PDF saying {word}")
    return bytes(document.output())


def saved(document) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def word_document(word: str) -> bytes:
    document = docx.Document()
    document.add_paragraph(f"a Word document saying {word}")
    return saved(document)


def workbook(word: str) -> bytes:
    book = openpyxl.Workbook()
    book.active["B2"] = f"a cell saying {word}"
    return saved(book)


def slides(word: str) -> bytes:
    deck = pptx.Presentation()
    deck.slides.add_slide(deck.slide_layouts[1]).shapes.title.text = f"a slide saying {word}"
    return saved(deck)


def opendocument(kind: str, body: str) -> bytes:
    """The smallest OpenDocument file: mimetype, manifest and content.xml around `body`."""
    mime = f"application/vnd.oasis.opendocument.{kind}"
    names = " ".join(
        f'xmlns:{prefix}="urn:oasis:names:tc:opendocument:xmlns:{prefix}:1.0"'
        for prefix in ("office", "text", "table", "manifest")
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", mime)
        archive.writestr(
            "META-INF/manifest.xml",
            f'<manifest:manifest {names}><manifest:file-entry manifest:full-path="/"'
            f' manifest:media-type="{mime}"/></manifest:manifest>',
        )
        archive.writestr(
            "content.xml",
            f"<office:document-content {names}><office:body>{body}</office:body>"
            "</office:document-content>",
        )
    return buffer.getvalue()


def mail(word: str) -> bytes:
    message = email.message.EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "hi"
    message.set_content(f"a mail saying {word}")
    return bytes(message)


def many_pages_pdf(pages: int) -> bytes:
    """Every page shares one content stream: written in an instant, parsed for many seconds."""
    text = b"BT /F1 8 Tf 20 800 Td" + b" (a line of text) Tj 0 -10 Td" * 70 + b" ET"
    page = b"<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d /MediaBox [0 0 595 842] >>"
        % (b" ".join(b"%d 0 R" % (5 + index) for index in range(pages)), pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text),
        *[page] * pages,
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    table = b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"xref\n0 %d\n0000000000 65535 f \n%s" % (len(objects) + 1, table)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        out.index(b"xref\n"),
    )
    return bytes(out)


def workers() -> set[int]:
    """This process's extraction worker processes, read from /proc."""
    children = set()
    for task in Path("/proc/self/task").iterdir():
        try:  # a thread may end between the listing and the read
            children.update(int(pid) for pid in (task / "children").read_text().split())
        except FileNotFoundError:
            continue
    found = set()
    for pid in children:
        try:
            if b"connectors.extraction" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
        except FileNotFoundError:
            pass
    return found


ODT = "<office:text><text:p>a text saying {}</text:p></office:text>"
ODS = (
    '<office:spreadsheet><table:table table:name="s"><table:table-row><table:table-cell'
    ' office:value-type="string"><text:p>a cell saying {}</text:p></table:table-cell>'
    "</table:table-row></table:table></office:spreadsheet>"
)
DOCUMENTS = {
    "report.pdf": pdf,
    "letter.docx": word_document,
    "figures.xlsx": workbook,
    "talk.pptx": slides,
    "notes.odt": lambda word: opendocument("text", ODT.format(word)),
    "sheet.ods": lambda word: opendocument("spreadsheet", ODS.format(word)),
    "old.rtf": lambda word: (
        b"{\\rtf1\\ansi{\\fonttbl\\f0 Arial;}\\f0 an RTF saying %s\\par}" % word.encode()
    ),
    "page.html": lambda word: (
        b"<html><body><p>a page saying <b>%s</b></p></body></html>" % word.encode()
    ),
    "mail.eml": mail,
}


@pytest.fixture(scope="module")
async def extractor():
    extractor = Extractor(ExtractionLimits(workers=2))
    yield extractor
    await extractor.close()


@pytest.mark.parametrize("name", DOCUMENTS)
async def test_each_format_gives_the_text_it_holds(extractor, name):
    word = f"zanzibar{Path(name).suffix[1:]}"
    extracted = await extractor.extract(DOCUMENTS[name](word), name)
    assert extracted.error is None
    assert word in extracted.text


async def test_every_extractable_suffix_is_tested():
    # No maintained Python library writes .doc, .msg or .xls, and other projects' sample files
    # are theirs to keep: those three were checked by hand on sample files, not here.
    tested = {Path(name).suffix for name in DOCUMENTS}
    assert EXTRACTABLE_SUFFIXES - tested == {".htm", ".doc", ".msg", ".xls"}


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("random.pdf", os.urandom(5000), "corrupt or unsupported PDF: "),
        ("cut.docx", word_document("x")[:2000], "corrupt or unsupported DOCX: "),
        ("cut.xlsx", workbook("x")[:1000], "corrupt or unsupported XLSX: "),
        ("random.msg", os.urandom(3000), "corrupt or unsupported MSG: "),
    ],
)
async def test_a_corrupt_file_gives_an_error_not_an_exception(extractor, name, data, reason):
    extracted = await extractor.extract(data, name)
    assert extracted.text is None
    assert extracted.error.startswith(reason) and "\n" not in extracted.error
    assert (await extractor.extract(pdf("after"), "next.pdf")).text.endswith("after")


async def test_an_oversized_file_is_refused_before_any_worker_starts():
    before = workers()
    extractor = Extractor(ExtractionLimits(max_bytes=2**20))
    extracted = await extractor.extract(b"%PDF-1.4\n" + bytes(3 * 2**19), "big.pdf")
    assert extracted == Extracted(None, "file is 1.5 MiB, over the 1.0 MiB extraction limit")
    assert workers() == before


async def test_a_file_without_a_known_suffix_is_refused(extractor):
    assert (await extractor.extract(b"hello", "notes.txt")).error == "no text extraction for .txt"


async def test_a_slow_file_is_stopped_at_the_time_limit_while_the_loop_runs_on():
    """A 40 000-page PDF takes far longer than 0.5 s anywhere; its worker is killed, not left."""
    extractor = Extractor(ExtractionLimits(timeout_seconds=0.5, workers=1))
    before = workers()
    assert (await extractor.extract(pdf("warm"), "warm.pdf")).error is None
    (busy,) = workers() - before
    beats = 0

    async def heartbeat():
        nonlocal beats
        while True:
            await asyncio.sleep(0.02)
            beats += 1

    beating = asyncio.create_task(heartbeat())
    extracted = await extractor.extract(many_pages_pdf(40_000), "huge.pdf")
    beating.cancel()
    assert extracted.text is None
    assert extracted.error == "extraction took longer than 0.5 s"
    assert beats > 5  # the event loop kept running while the file was parsed
    assert busy not in workers() and not Path(f"/proc/{busy}").exists()
    assert (await extractor.extract(pdf("again"), "again.pdf")).text.endswith("again")
    await extractor.close()


async def test_a_worker_that_dies_costs_one_file():
    extractor = Extractor(ExtractionLimits(workers=1))
    before = workers()
    await extractor.extract(pdf("warm"), "warm.pdf")
    (worker,) = workers() - before
    pending = asyncio.create_task(extractor.extract(many_pages_pdf(40_000), "huge.pdf"))
    await asyncio.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    extracted = await pending
    assert extracted.error == "the extraction process died (exit code -9)"
    assert (await extractor.extract(pdf("again"), "again.pdf")).text.endswith("again")
    await extractor.close()


async def test_a_cancelled_extraction_stops_its_worker_and_the_next_one_is_correct():
    before = workers()
    extractor = Extractor(ExtractionLimits(workers=1))
    pending = asyncio.create_task(extractor.extract(many_pages_pdf(40_000), "huge.pdf"))
    await asyncio.sleep(0.3)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert workers() == before
    assert (await extractor.extract(pdf("next"), "next.pdf")).text.endswith("next")
    await extractor.close()


async def test_concurrent_callers_share_at_most_workers_processes_and_close_ends_them():
    before = workers()
    extractor = Extractor(ExtractionLimits(workers=2))
    names = [f"file{index}.docx" for index in range(8)]
    results = await asyncio.gather(
        *(extractor.extract(word_document(f"word{name}"), name) for name in names)
    )
    assert [f"word{name}" in result.text for name, result in zip(names, results, strict=True)] == [
        True
    ] * 8
    assert len(workers() - before) == 2
    await extractor.close()
    assert workers() - before == set()


def test_importing_the_module_does_not_load_kreuzberg():
    check = "import sys, elastic_ingest.connectors.extraction; print('kreuzberg' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=PROJECT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Report.PDF", True),
        ("a/b/letter.docx", True),
        ("mail.eml", True),
        ("slides.odp", False),
        ("notes.txt", False),
        ("archive.pdf.gz", False),
        ("README", False),
    ],
)
def test_is_extractable_reads_the_suffix(name, expected):
    assert is_extractable(name) is expected


def test_reduce_whitespace_keeps_one_line_break_per_paragraph():
    text = "  Title \t here\r\n\r\n\n  first\u00a0 line \f page two\n\tend  "
    assert reduce_whitespace(text) == "Title here\nfirst line\npage two\nend"
    assert reduce_whitespace(" \n\t ") == ""
