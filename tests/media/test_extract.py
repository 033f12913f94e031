"""A document's text for the model: a PDF's through pypdf, plain text as it is, both bounded;
anything else, or a PDF pypdf cannot read, keeps no text (never an error)."""

from __future__ import annotations

from pathlib import Path

from aspri.media import MediaStore
from aspri.media.extract import CUT, extract, with_text
from aspri.schemas.media import Document, Image, as_text
from tests.media.pdf import pdf_with_text


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "doc"
    path.write_bytes(data)
    return path


def test_pdf_and_plain_text_within_the_bound(tmp_path: Path) -> None:
    pdf = write(tmp_path, pdf_with_text(["Invoice 42: total (EUR) 118.00", "Due on 3 January"]))
    assert (
        extract(pdf, "application/pdf", 1000)
        == "Invoice 42: total (EUR) 118.00\n\nDue on 3 January"
    )
    assert extract(pdf, "application/pdf", 10) == "Invoice 42" + CUT
    notes = write(tmp_path, b"Shopping: milk, eggs\n" * 3 + b"\xff")
    assert extract(notes, "text/plain", 1000) == ("Shopping: milk, eggs\n" * 3).strip() + "\n\ufffd"
    assert extract(notes, "application/zip", 1000) is None


async def test_with_text_stores_it_and_the_model_reads_it(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, {"document": 100_000, "image": 100_000})
    stored = await store.put("document", pdf_with_text(["The lease ends in May."]))
    doc = Document(sha256=stored.sha256, mime="application/pdf", filename="lease.pdf")
    read = await with_text(store, doc, 1000)
    assert isinstance(read, Document) and read.text == "The lease ends in May."
    assert as_text("", read) == "[document lease.pdf, its text follows]\nThe lease ends in May."
    assert as_text("see this", read).startswith("[document lease.pdf, its text follows] see this")
    assert await with_text(store, doc, 0) == doc  # DOCUMENT_TEXT_MAX_CHARS=0: off

    broken = await store.put("document", b"%PDF-1.4\n" + b"garbage" * 100)
    torn = Document(sha256=broken.sha256, mime="application/pdf", filename="torn.pdf")
    assert await with_text(store, torn, 1000) == torn  # its name still reaches the model
    image = Image(sha256=stored.sha256, mime="image/png")
    assert await with_text(store, image, 1000) == image
