"""Turning file-like bytes into indexable text, the same way for every source: which names are
text, and HTML reduced to its text."""

from __future__ import annotations

import mimetypes
from html.parser import HTMLParser

from elastic_ingest.connectors.extraction import is_extractable

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-yaml")
TEXT_SUFFIXES = frozenset(
    ".txt .md .markdown .rst .csv .tsv .json .yaml .yml .toml .ini .cfg .html .htm .xml .log "
    ".py .js .ts .go .rs .java .c .h .cpp .sh .sql".split()
)


def guess_content_type(name: str) -> str:
    if name.lower().endswith((".md", ".markdown")):
        return "text/markdown"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def is_text(name: str, content_type: str | None = None) -> bool:
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return suffix in TEXT_SUFFIXES or (content_type or "").startswith(TEXT_TYPES)


class _TextExtractor(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(html)
    return " ".join(extractor.parts)


def decode_text(data: bytes, name: str, content_type: str | None = None) -> str | None:
    """Text for text-like content (HTML reduced to its text); None for binary data."""
    if b"\0" in data[:8192]:
        return None
    text = data.decode("utf-8", errors="replace")
    kind = content_type or guess_content_type(name)
    if "html" in kind or name.lower().endswith((".html", ".htm")):
        return html_to_text(text)
    return text


MIB = 1024 * 1024


def content_kind(name: str, size: int, text_up_to: int, binary_up_to: int) -> str | None:
    """What to fetch of a file: "text" (read and decode), "binary" (read, then extract its
    text), or None (metadata only: not text, not extractable, or too large)."""
    if is_text(name):
        return "text" if size <= text_up_to else None
    if binary_up_to and is_extractable(name):
        return "binary" if size <= binary_up_to else None
    return None


def extraction_refusal(name: str, size: int, binary_up_to: int) -> str | None:
    """Why an extractable file's text is not extracted (for its `extraction_error`), if so."""
    if binary_up_to and not is_text(name) and is_extractable(name) and size > binary_up_to:
        return f"file is {_size(size)}, over the {_size(binary_up_to)} extraction limit"
    return None


def _size(count: int) -> str:
    return f"{count / MIB:.1f} MiB" if count >= MIB else f"{count / 1024:.1f} KiB"
