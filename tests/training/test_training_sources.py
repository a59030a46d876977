"""Data sources on small files the tests write: text, a real parquet shard, a real MediaWiki dump (+ bz2)."""
import bz2
import sys
import types
from xml.sax.saxutils import escape

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nested_learning.training.sources import DOCUMENT_CHARS, open_source
from nested_learning.training.wiki import strip_wikitext, wiki_dump_documents

TURING = """{{Short description|English mathematician}}
{{Infobox person
| name = Alan Turing
| birth_date = {{birth date|1912|6|23}}
}}
'''Alan Mathison Turing''' was an English [[mathematician]] and [[computer science|computer scientist]].<ref name="b">{{cite web|url=http://x.org|title=X}}</ref> He was born in [[London]].<ref>A book.</ref>

== Early life ==
Turing went to [[Sherborne School]].<!-- a comment -->
[[File:Turing.jpg|thumb|Turing at [[Sherborne School|Sherborne]]]]
{| class="wikitable"
|-
! Year !! Event
|-
| 1936 || {{nowrap|On Computable Numbers}}
|}
* He liked ''long-distance running''.
See [https://example.org the archive] and [https://example.org/bare].&nbsp;Done.
[[Category:1912 births]]"""

TURING_PLAIN = ("Alan Mathison Turing was an English mathematician and computer scientist. He was born in London.\n\n"
                "Early life\nTuring went to Sherborne School.\n\nHe liked long-distance running.\n"
                "See the archive and . Done.")


def page(title, ns, page_id, text, redirect=False):
    return (f"  <page>\n    <title>{escape(title)}</title>\n    <ns>{ns}</ns>\n    <id>{page_id}</id>\n"
            + ('    <redirect title="Alan Turing" />\n' if redirect else "")
            + f"    <revision>\n      <id>{page_id * 100}</id>\n      <contributor><username>Ed</username><id>7</id></contributor>\n"
            f'      <text bytes="{len(text)}" xml:space="preserve">{escape(text)}</text>\n    </revision>\n  </page>\n')


def write_dump(path, compress=False):
    xml = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="en">\n'
           "  <siteinfo>\n    <sitename>Wikipedia</sitename>\n    <namespaces>\n"
           '      <namespace key="0" case="first-letter" />\n      <namespace key="1" case="first-letter">Talk</namespace>\n'
           "    </namespaces>\n  </siteinfo>\n"
           + page("Alan Turing", 0, 1208, TURING)
           + page("Turing", 0, 2, "#REDIRECT [[Alan Turing]]", redirect=True)
           + page("Talk:Alan Turing", 1, 3, "A talk page.")
           + page("Ada Lovelace", 0, 4, "'''Ada''' wrote the first [[algorithm|program]].")
           + "</mediawiki>\n").encode("utf-8")
    path.write_bytes(bz2.compress(xml) if compress else xml)
    return path


@pytest.mark.parametrize("name", ["dump.xml", "dump.xml.bz2"])
def test_mediawiki_dump_streams_articles_with_markup_stripped(tmp_path, name):
    path = write_dump(tmp_path / name, compress=name.endswith(".bz2"))
    pages = list(wiki_dump_documents(path))
    assert [(p.id, p.title) for p in pages] == [("1208", "Alan Turing"), ("4", "Ada Lovelace")]  # no redirect, no talk page
    assert pages[0].text == TURING_PLAIN
    assert pages[1].text == "Ada wrote the first program."
    documents = list(open_source(str(path)).documents())
    assert [d.id for d in documents] == ["1208", "4"] and documents[0].text == TURING_PLAIN
    assert [d.id for d in open_source(str(path)).documents(start=1)] == ["4"]


def test_wikitext_rules():
    assert strip_wikitext("a {{outer|{{inner}}}} b") == "a b"
    assert strip_wikitext("x\n{| t\n| {| nested\n|}\n|}\ny") == "x\n\ny"
    assert strip_wikitext("[[Image:a.png|thumb|A [[cat]] sits]] [[:Category:Cats|cats]]") == "cats"
    assert strip_wikitext("=== Sub ===\n''i'' '''b''' '''''bi'''''") == "Sub\ni b bi"
    assert strip_wikitext("x<ref name=a/>y<ref>z</ref> <span>w</span> a &amp; b") == "xy w a & b"


@pytest.mark.parametrize("name, content, message", [
    ("broken.xml", b"<mediawiki><page><title>A</title></mediawiki>", "broken.xml: malformed XML"),
    ("other.xml", b"<rss><item/></rss>", "not a MediaWiki dump"),
    ("fake.xml.bz2", b"not compressed", "fake.xml.bz2: cannot read")])
def test_bad_dumps_raise_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        list(wiki_dump_documents(path))


def write_shard(path, rows, row_group_size=2, **columns):
    table = pa.table(columns or {"id": [str(i) for i in rows], "url": [f"https://en.wikipedia.org/wiki?curid={i}" for i in rows],
                                 "title": [f"Title {i}" for i in rows], "text": [f"Article number {i}." for i in rows]})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def test_parquet_shard_reads_rows_and_skips_row_groups(tmp_path):
    path = write_shard(tmp_path / "train-00000-of-00001.parquet", range(5))
    assert pq.ParquetFile(path).num_row_groups == 3
    documents = list(open_source(str(path)).documents())
    assert [(d.id, d.title, d.text) for d in documents] == [(str(i), f"Title {i}", f"Article number {i}.") for i in range(5)]
    for start in range(6):  # resume positions inside and between row groups
        assert list(open_source(str(path)).documents(start)) == documents[start:]


@pytest.mark.parametrize("columns, message", [
    (dict(content=["x"], title=["t"]), r"bad.parquet: missing column\(s\) id, url, text"),
    (dict(id=["1"], url=["u"], title=["t"], text=[3]), "column 'text' must hold strings"),
    (None, "bad.parquet: not a readable parquet file")])
def test_parquet_with_wrong_schema_or_bytes_is_refused(tmp_path, columns, message):
    bad = tmp_path / "bad.parquet"
    if columns is None:
        bad.write_bytes(b"PAR1 this is not parquet")
    else:
        write_shard(bad, None, **columns)
    with pytest.raises(ValueError, match=message):
        open_source(str(bad))


def test_text_files_and_folders(tmp_path):
    paragraphs = [f"Paragraph {i} " + "word " * 200 for i in range(12)]  # about 1 KB each
    (tmp_path / "corpus" / "sub").mkdir(parents=True)
    (tmp_path / "corpus" / "sub" / "a.txt").write_text("\n\n".join(paragraphs))
    (tmp_path / "corpus" / "b.txt").write_text("Just one line.")
    (tmp_path / "corpus" / "notes.bin").write_bytes(b"\x00\x01")  # not a data file: ignored
    documents = list(open_source(str(tmp_path / "corpus" / "sub" / "a.txt")).documents())
    assert all(len(d.text) <= DOCUMENT_CHARS for d in documents) and len(documents) >= 3
    assert "\n\n".join(d.text for d in documents) == "\n\n".join(p.strip() for p in paragraphs)  # cut only between paragraphs
    assert [d.id for d in documents] == [f"a.txt#{i}" for i in range(len(documents))]
    folder = list(open_source(str(tmp_path / "corpus")).documents())
    assert sorted(d.id for d in folder) == sorted(["b.txt#0"] + [f"sub/a.txt#{i}" for i in range(len(documents))])
    assert [d.id for d in open_source(str(tmp_path / "corpus")).documents(2)] == [d.id for d in folder[2:]]


def test_missing_paths_and_empty_folders(tmp_path):
    with pytest.raises(ValueError, match="nope.txt: no such file or folder"):
        open_source(str(tmp_path / "nope.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="folder has no .txt, .parquet, .xml or .xml.bz2 files"):
        open_source(str(tmp_path / "empty"))


def test_hugging_face_without_datasets_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    source = open_source("hf:wikimedia/wikipedia:20231101.en")
    with pytest.raises(ValueError, match=r"need the 'datasets' package \(pip install datasets\)"):
        next(source.documents())


def test_hugging_face_streams_and_skips(monkeypatch):
    calls = []

    class Stream:
        def __init__(self, rows):
            self.rows = rows

        def skip(self, n):
            return Stream(self.rows[n:])

        def __iter__(self):
            return iter(self.rows)

    def load_dataset(name, config, split, streaming):
        calls.append((name, config, split, streaming))
        if name == "offline/none":
            raise ConnectionError("Couldn't reach the Hugging Face Hub\nlong trace")
        return Stream([{"id": "12", "url": "u", "title": "Anarchism", "text": "Anarchism is ..."},
                       {"id": "25", "url": "u", "title": "Autism", "text": "Autism is ..."}])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    documents = list(open_source("hf:wikimedia/wikipedia:20231101.en").documents(start=1))
    assert calls == [("wikimedia/wikipedia", "20231101.en", "train", True)]
    assert [(d.id, d.title, d.text) for d in documents] == [("25", "Autism", "Autism is ...")]
    with pytest.raises(ValueError, match=r"hf:offline/none@validation: cannot stream the dataset \(Couldn't reach the Hugging Face Hub\)"):
        list(open_source("hf:offline/none@validation").documents())
    assert calls[-1] == ("offline/none", None, "validation", True)


def test_folder_of_shards_and_dumps_resumes_at_any_document(tmp_path):
    (tmp_path / "mixed").mkdir()
    write_shard(tmp_path / "mixed" / "a.parquet", range(3))
    write_shard(tmp_path / "mixed" / "b.parquet", range(10, 14))
    write_dump(tmp_path / "mixed" / "c.xml.bz2", compress=True)
    documents = list(open_source(str(tmp_path / "mixed")).documents())
    assert len(documents) == 3 + 4 + 2
    for start in range(len(documents) + 1):
        assert list(open_source(str(tmp_path / "mixed")).documents(start)) == documents[start:]
