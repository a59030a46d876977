"""MediaWiki XML dumps (``pages-articles.xml`` or ``.xml.bz2``) as a stream of plain-text articles.

The dump is read with ``xml.etree.ElementTree.iterparse`` and every finished page is cleared, so
memory stays flat however large the dump. Only articles are kept: namespace 0, not redirects.
:func:`strip_wikitext` turns wiki markup into prose; it is a set of regular rules, not a
MediaWiki parser, and aims at clean training text rather than a faithful rendering.
"""
from __future__ import annotations

import bz2
import html
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


@dataclass(frozen=True)
class WikiPage:
    id: str
    title: str
    text: str  # markup stripped


COMMENT = re.compile(r"<!--.*?-->", re.S)
# References and other tags whose content is not prose.
DROPPED_ELEMENTS = re.compile(r"<(ref|gallery|math|score|timeline|syntaxhighlight|source|templatedata)\b[^>]*?/>"
                              r"|<(ref|gallery|math|score|timeline|syntaxhighlight|source|templatedata)\b[^>]*>.*?</\2\s*>",
                              re.S | re.I)
TAG = re.compile(r"</?[a-zA-Z][^<>]*?/?>")
TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")  # innermost template; repeated until none is left
TABLE = re.compile(r"\{\|(?:(?!\{\|).)*?\|\}", re.S)  # innermost table
LINK = re.compile(r"\[\[([^\[\]]*)\]\]")  # innermost internal link
EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]+(?:\s([^\]]*))?\]")
BOLD_ITALIC = re.compile(r"'{2,5}")
HEADING = re.compile(r"^(={1,6})\s*(.*?)\s*\1\s*$", re.M)
LIST_MARKER = re.compile(r"^[*#:;]+\s*", re.M)
MAGIC_WORD = re.compile(r"__[A-Z]+__")
RULE = re.compile(r"^-{4,}\s*$", re.M)
NON_ARTICLE_LINK = ("file:", "image:", "category:", "media:")


def _replace_until_stable(pattern: re.Pattern, replacement, text: str) -> str:
    while True:
        text, count = pattern.subn(replacement, text)
        if not count:
            return text


def _link_text(match: re.Match) -> str:
    target, _, label = match.group(1).partition("|")
    if target.strip().lower().startswith(NON_ARTICLE_LINK):
        return ""
    if target.startswith(":"):
        target = target[1:]
    return (label or target).strip()


def strip_wikitext(text: str) -> str:
    """Plain text from wiki markup: links keep their label, templates, tables, references, comments,
    images and categories go, bold/italic quotes and heading/list markers go, entities are decoded."""
    text = COMMENT.sub("", text)
    text = DROPPED_ELEMENTS.sub("", text)
    text = _replace_until_stable(TEMPLATE, "", text)
    text = _replace_until_stable(TABLE, "", text)
    text = _replace_until_stable(LINK, _link_text, text)  # innermost first: captions inside File: links resolve, then go
    text = EXTERNAL_LINK.sub(lambda m: m.group(1) or "", text)
    text = TAG.sub("", text)
    text = BOLD_ITALIC.sub("", text)
    text = HEADING.sub(lambda m: m.group(2), text)
    text = LIST_MARKER.sub("", text)
    text = MAGIC_WORD.sub("", text)
    text = RULE.sub("", text)
    text = html.unescape(text).replace("\u00a0", " ")
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # dumps carry a versioned namespace: {http://www.mediawiki.org/xml/export-0.11/}page


def _open(path: Path):
    return bz2.open(path, "rb") if path.name.lower().endswith(".bz2") else open(path, "rb")


def wiki_dump_documents(path: str | Path) -> Iterator[WikiPage]:
    """Articles of a dump in file order; a malformed dump raises ValueError naming the line."""
    path = Path(path)
    try:
        with _open(path) as stream:
            context = ET.iterparse(stream, events=("start", "end"))
            _, root = next(context)
            if _local(root.tag) != "mediawiki":
                raise ValueError(f"{path}: not a MediaWiki dump (root element <{_local(root.tag)}>)")
            for event, element in context:
                if event != "end" or _local(element.tag) != "page":
                    continue
                page = _page(element)
                root.clear()  # drop the finished page (and any siblings) so memory stays flat
                if page is not None:
                    yield page
    except ET.ParseError as e:
        raise ValueError(f"{path}: malformed XML ({e})") from None
    except (OSError, EOFError) as e:  # bz2 raises OSError for data that is not bz2, EOFError when cut short
        raise ValueError(f"{path}: cannot read ({e})") from None
    except StopIteration:
        raise ValueError(f"{path}: empty XML file") from None


def _page(element) -> WikiPage | None:
    fields = {"title": "", "ns": "0", "id": "", "text": "", "redirect": None}
    for child in element.iter():
        name = _local(child.tag)
        if name == "redirect":
            fields["redirect"] = True
        elif name == "id" and not fields["id"]:  # the page id comes before the revision and contributor ids
            fields["id"] = (child.text or "").strip()
        elif name in ("title", "ns", "text"):
            fields[name] = child.text or ""
    if fields["ns"].strip() != "0" or fields["redirect"] or fields["text"].lstrip().lower().startswith("#redirect"):
        return None
    text = strip_wikitext(fields["text"])
    return WikiPage(fields["id"] or fields["title"], fields["title"], text) if text else None
