"""Report files as the CDN serves them: deterministic, real PDF / DOCX, padded to any size lazily."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape as xml_escape

from .protocol import CHUNK_SIZE


@dataclass(frozen=True)
class _ReportFile:
    """A report as served by the CDN: ``head`` + ``pad`` filler bytes (generated lazily) + ``tail``."""

    filename: str
    media_type: str
    head: bytes
    pad: int
    tail: bytes

    @property
    def size(self) -> int:
        return len(self.head) + self.pad + len(self.tail)

    def iter_chunks(self) -> Iterator[bytes]:
        """Yield the file in chunks of at most 64 KiB, never holding the padding in memory."""
        for part in (self.head, None, self.tail):
            if part is None:
                yield from _iter_padding(self.pad)
                continue
            for start in range(0, len(part), CHUNK_SIZE):
                yield part[start : start + CHUNK_SIZE]


_PAD_LINE = b"%" + b"x" * 62 + b"\n"  # a 64-byte PDF comment line
_PAD_BLOCK = _PAD_LINE * (CHUNK_SIZE // len(_PAD_LINE))


def _pad_label(index: int) -> bytes:
    return (b"%%emulator padding block %012d " % index).ljust(63, b".") + b"\n"


def _iter_padding(total: int) -> Iterator[bytes]:
    """Yield ``total`` bytes of PDF comment lines, each 64 KiB block labelled with its index."""
    index = 0
    remaining = total
    while remaining >= CHUNK_SIZE:
        yield _pad_label(index) + _PAD_BLOCK[len(_PAD_LINE) :]
        remaining -= CHUNK_SIZE
        index += 1
    if remaining:
        full, rest = divmod(remaining, len(_PAD_LINE))
        out = (_pad_label(index) + _PAD_LINE * (full - 1)) if full else b""
        if rest == 1:
            out += b"\n"
        elif rest >= 2:
            out += b"%" + b"x" * (rest - 2) + b"\n"
        yield out


def _pdf_text(value: str) -> bytes:
    """Encode a PDF literal string body: ASCII only (non-ASCII escaped), parentheses escaped."""
    text = " ".join(value.split()).encode("ascii", "backslashreplace").decode("ascii")
    text = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return text.encode("ascii")


def _build_pdf(
    title: str,
    lines: Sequence[str],
    doc_title: str,
    target_size: int | None,
) -> tuple[bytes, int, bytes]:
    """Build a valid one-page PDF 1.4, padded to exactly ``target_size`` bytes when given."""
    content = b"BT\n/F1 18 Tf\n72 720 Td\n(" + _pdf_text(title) + b") Tj\n/F1 11 Tf\n"
    for line in lines:
        content += b"0 -20 Td\n(" + _pdf_text(line) + b") Tj\n"
    content += b"ET\n"
    title_hex = (b"\xfe\xff" + doc_title.encode("utf-16-be")).hex().upper().encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Title <" + title_hex + b"> /Producer (PatsnapEmulator) /Creator (PatsnapEmulator) >>",
    ]
    head = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(head))
        head += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    xref += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    xref += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n" % (len(objects) + 1)
    eof = b"\n%%EOF"
    pad = 0
    if target_size is not None:
        fixed = len(xref) + len(eof)
        for digits in range(1, 21):  # startxref = len(head) + pad has `digits` digits
            start = target_size - fixed - digits
            if start >= len(head) and len(str(start)) == digits:
                pad = start - len(head)
                break
    tail = xref + str(len(head) + pad).encode("ascii") + eof
    return head, pad, tail


def _xml_text(value: str) -> str:
    cleaned = "".join(ch for ch in value if ch in "\t\n\r" or ord(ch) >= 0x20)
    return xml_escape(cleaned)


def _build_docx(title: str, lines: Sequence[str]) -> bytes:
    """Build a minimal valid DOCX (Office Open XML) package, byte-for-byte deterministic."""
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        'wordprocessingml.document.main+xml"/></Types>'
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        'officeDocument" Target="word/document.xml"/></Relationships>'
    )
    paragraphs = "".join(
        f'<w:p><w:r><w:t xml:space="preserve">{_xml_text(text)}</w:t></w:r></w:p>' for text in (title, *lines)
    )
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body>{paragraphs}<w:sectPr/></w:body></w:document>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in (
            ("[Content_Types].xml", content_types),
            ("_rels/.rels", rels),
            ("word/document.xml", document),
        ):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()
