"""Document sources: plain text files and folders, parquet shards, MediaWiki XML dumps, Hugging Face.

A source yields :class:`Document`s in a fixed order and can start at any raw document index
(``documents(start)``), which is how training resumes exactly. Specs (``--data``):

    PATH.txt (any other file)   plain UTF-8 text, cut into documents of whole paragraphs
    PATH.parquet                rows with the Wikipedia schema: id, url, title, text
    PATH.xml / PATH.xml.bz2     a MediaWiki dump, parsed as a stream (see wiki.py)
    FOLDER                      every .txt, .parquet, .xml and .xml.bz2 file below it, in a fixed shuffled order
    hf:NAME[:CONFIG][@SPLIT]    a Hugging Face dataset, streamed, e.g. hf:wikimedia/wikipedia:20231101.en
"""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .wiki import wiki_dump_documents

PARQUET_COLUMNS = ("id", "url", "title", "text")
DOCUMENT_CHARS = 4096  # text files are cut at paragraph breaks into documents of about this size


@dataclass(frozen=True)
class Document:
    id: str  # the held-out split hashes it: a Wikipedia page id, or "file name#k" for text
    title: str
    text: str


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".xml.bz2"):
        return ".xml.bz2"
    return path.suffix.lower()


class TextSource:
    """One UTF-8 text file, cut at blank lines into documents of about DOCUMENT_CHARS characters
    (so even a single file gives a held-out split)."""

    def __init__(self, path: Path, name: str | None = None):
        self.path, self.name = path, name or path.name  # the name, not the path, makes document ids

    def documents(self, start: int = 0) -> Iterator[Document]:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise ValueError(f"{self.path}: cannot read ({e.strerror or e})") from None
        return itertools.islice(self._cut(text), start, None)

    def _cut(self, text: str) -> Iterator[Document]:
        paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n")]
        chunk, size, index = [], 0, 0
        for paragraph in itertools.chain((p for p in paragraphs if p), [None]):
            if chunk and (paragraph is None or size + len(paragraph) > DOCUMENT_CHARS):
                yield Document(f"{self.name}#{index}", self.path.name, "\n\n".join(chunk))
                chunk, size, index = [], 0, index + 1
            if paragraph is not None:
                chunk.append(paragraph)
                size += len(paragraph) + 2


class ParquetSource:
    """A parquet shard with the Wikipedia schema, read one row group at a time."""

    def __init__(self, path: Path):
        self.path, self.name = path, str(path)
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ValueError(f"{path}: reading parquet needs the 'pyarrow' package (pip install pyarrow)") from None
        try:
            self._file = pq.ParquetFile(path)
        except Exception as e:  # pyarrow raises ArrowInvalid and friends for damaged files
            raise ValueError(f"{path}: not a readable parquet file ({str(e).splitlines()[0][:160]})") from None
        names = self._file.schema_arrow.names
        missing = [c for c in PARQUET_COLUMNS if c not in names]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected the Wikipedia schema "
                             f"{', '.join(PARQUET_COLUMNS)} (has {', '.join(names) or 'none'})")
        import pyarrow as pa

        kind = self._file.schema_arrow.field("text").type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise ValueError(f"{path}: column 'text' must hold strings, not {kind}")

    def count(self) -> int:
        return self._file.metadata.num_rows

    def documents(self, start: int = 0) -> Iterator[Document]:
        for group in range(self._file.num_row_groups):
            rows = self._file.metadata.row_group(group).num_rows
            if start >= rows:  # skip whole row groups without reading them
                start -= rows
                continue
            table = self._file.read_row_group(group, columns=["id", "title", "text"]).slice(start)
            start = 0
            for doc_id, title, text in zip(*(table.column(c).to_pylist() for c in ("id", "title", "text"))):
                yield Document(str(doc_id), str(title or ""), text or "")


class WikiDumpSource:
    def __init__(self, path: Path):
        self.path, self.name = path, str(path)

    def documents(self, start: int = 0) -> Iterator[Document]:
        for page in itertools.islice(wiki_dump_documents(self.path), start, None):
            yield Document(page.id, page.title, page.text)


class HuggingFaceSource:
    """``hf:NAME[:CONFIG][@SPLIT]``, streamed with ``datasets`` (imported only here)."""

    def __init__(self, spec: str):
        body = spec[3:]
        body, _, split = body.partition("@")
        self.dataset, _, config = body.partition(":")
        self.config, self.split, self.name = config or None, split or "train", spec
        if not self.dataset:
            raise ValueError(f"{spec}: expected hf:NAME[:CONFIG][@SPLIT], e.g. hf:wikimedia/wikipedia:20231101.en")

    def documents(self, start: int = 0) -> Iterator[Document]:
        try:
            import datasets
        except ImportError:
            raise ValueError(f"{self.name}: Hugging Face sources need the 'datasets' package (pip install datasets)") from None
        try:
            stream = datasets.load_dataset(self.dataset, self.config, split=self.split, streaming=True)
            if start:
                stream = stream.skip(start)
            for index, row in enumerate(stream, start):
                if "text" not in row:
                    raise ValueError(f"{self.name}: rows have no 'text' field (fields: {', '.join(row)})")
                yield Document(str(row.get("id", f"{self.name}#{index}")), str(row.get("title") or ""), row["text"] or "")
        except ValueError:
            raise
        except Exception as e:  # offline, unknown dataset, bad config: all arrive as library-specific errors
            message = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ValueError(f"{self.name}: cannot stream the dataset ({message}); without network, use local parquet "
                             "shards or a dump file") from None


class ConcatSource:
    """Files of a folder, one after another."""

    def __init__(self, name: str, sources: list):
        self.name, self.sources = name, sources

    def documents(self, start: int = 0) -> Iterator[Document]:
        for source in self.sources:
            if start and hasattr(source, "count"):  # parquet knows its row count: skip the file unread
                if start >= source.count():
                    start -= source.count()
                    continue
                yield from source.documents(start)
                start = 0
                continue
            for document in source.documents():
                if start:
                    start -= 1
                    continue
                yield document


def _shuffle_key(name: str) -> bytes:
    # A folder is read in a fixed pseudo-random file order, so that files of one kind (one
    # subfolder, one naming pattern) do not fill a long stretch of training.
    return hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()


def _file_source(path: Path):
    kind = _suffix(path)
    if kind == ".parquet":
        return ParquetSource(path)
    if kind in (".xml", ".xml.bz2"):
        return WikiDumpSource(path)
    return TextSource(path)


def open_source(spec: str):
    """A source for one ``--data`` spec; bad specs raise ValueError with one line."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty --data spec")
    if spec.startswith("hf:"):
        return HuggingFaceSource(spec)
    path = Path(spec).expanduser()
    if path.is_file():
        return _file_source(path)
    if path.is_dir():
        files = sorted((p for p in path.rglob("*") if p.is_file() and _suffix(p) in (".txt", ".parquet", ".xml", ".xml.bz2")),
                       key=lambda p: _shuffle_key(str(p.relative_to(path))))
        if not files:
            raise ValueError(f"{spec}: folder has no .txt, .parquet, .xml or .xml.bz2 files")
        return ConcatSource(spec, [_file_source(p) if _suffix(p) != ".txt" else TextSource(p, str(p.relative_to(path)))
                                   for p in files])
    raise ValueError(f"{spec}: no such file or folder")
