"""The built documentation renders its lists as lists.

Python-Markdown (mkdocs) starts a list only after a blank line, so a list written straight
under its paragraph ("files:" then "- `OUT/results.json`: ...") is rendered as one paragraph
with the dashes in its text. This test reads the HTML of a built site and fails on every
paragraph or list item whose text still holds a list marker at the start of a line (`- `,
`* `, `+ `, `1. `) or run in after a colon or semicolon (`files: - OUT/...`).

It builds nothing: point SPECTRALMIX_SITE_DIR at a site built with
`mkdocs build --strict -d site` (`nox -s docs` does both). Without it the site test skips.

Python-Markdown also needs 4 spaces to nest a list; a sub-list indented by 2 is rendered as
items of the outer list, which the HTML cannot tell from a flat list. That is checked on the
Markdown sources instead (`test_nested_lists_are_indented_by_four_spaces`), which needs no
site. Only the standard library is used, so the test runs with pytest alone (`--noconftest`).
"""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

SITE_DIR_VARIABLE = "SPECTRALMIX_SITE_DIR"
DOCS_DIR = Path(__file__).resolve().parents[1] / "docs"

#: A list marker at the start of a line of a paragraph's text: the list was never parsed.
MARKER_AT_LINE_START = re.compile(r"\n[ \t]*(?:[-*+]|\d{1,9}\.)[ \t]+\S")
#: A marker run in after a colon or semicolon ("files: - OUT/results.json"), which also
#: catches a run-in list in HTML whose line breaks were collapsed to spaces.
MARKER_AFTER_PUNCTUATION = re.compile(r"[:;][ \t\n]+[-*+][ \t]+\S")
#: Elements whose text is checked, and elements whose text belongs to no checked element.
CHECKED = {"p", "li"}
OPAQUE = {"pre", "script", "style", "template", "textarea", "ul", "ol", "table", "div", "dl"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


def run_in_lists(text: str) -> list[str]:
    """The lines of one element's text where a list marker shows that a list ran into it,
    each once, whitespace collapsed."""
    lines = set()
    for pattern in (MARKER_AT_LINE_START, MARKER_AFTER_PUNCTUATION):
        for match in pattern.finditer(text):
            marker = match.end() - 1  # inside the line that holds the marker
            lines.add(text.rfind("\n", 0, marker) + 1)
    found = []
    for start in sorted(lines):
        end = text.find("\n", start)
        found.append(" ".join(text[start : end if end != -1 else None].split()))
    return found


class _TextOfElements(HTMLParser):
    """Collects the text of every <p> and <li>, each without the text of the lists, code
    blocks and other blocks nested inside it, with the line where the element starts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, int, list[str]]] = []
        self.elements: list[tuple[str, int, str]] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in VOID:
            return
        if tag == "p" and self.stack and self.stack[-1][0] == "p":
            self._close("p")  # HTML: a <p> ends where the next one starts
        if tag in CHECKED or tag in OPAQUE:
            self.stack.append((tag, self.getpos()[0], []))

    def handle_endtag(self, tag: str) -> None:
        if any(open_tag == tag for open_tag, _, _ in self.stack):
            self._close(tag)

    def _close(self, tag: str) -> None:
        while self.stack:
            open_tag, line, parts = self.stack.pop()
            if open_tag in CHECKED:
                self.elements.append((open_tag, line, "".join(parts)))
            if open_tag == tag:
                return

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1][0] in CHECKED:
            self.stack[-1][2].append(data)

    def close(self) -> None:
        super().close()
        while self.stack:
            self._close(self.stack[-1][0])


def problems_in_html(html: str) -> list[str]:
    """`<tag> at line N: excerpt` for each run-in list in a page's HTML."""
    parser = _TextOfElements()
    parser.feed(html)
    parser.close()
    return [
        f"<{tag}> at line {line}: {excerpt!r}"
        for tag, line, text in sorted(parser.elements, key=lambda element: element[1])
        for excerpt in run_in_lists(text)
    ]


# The rule itself, on small pages: these run everywhere, with or without a built site.


@pytest.mark.parametrize(
    "html",
    [
        # What Python-Markdown makes of a list written straight under its paragraph.
        "<p>The last line names the three\nresult files:\n- <code>OUT/results.json</code>: "
        "metrics;\n- <code>OUT/results.md</code>: the table.</p>",
        "<p>The defaults:\n* width 48\n* 4 blocks</p>",
        "<p>Steps:\n1. build the site\n2. run the check</p>",
        "<p>Steps:\n  10. indented and numbered</p>",
        "<p>files: - <code>OUT/results.json</code>; - <code>OUT/results.md</code></p>",
        "<ul><li>an item whose sub-list ran in:\n- the sub-item</li></ul>",
        "<p>an unclosed paragraph\n- with a run-in list<p>and the next one</p>",
    ],
)
def test_the_rule_finds_a_run_in_list(html):
    assert problems_in_html(html)


@pytest.mark.parametrize(
    "html",
    [
        "<p>The last line names the three result files:</p>\n<ul>\n<li><code>OUT/results.json"
        "</code>: metrics;</li>\n<li><code>OUT/results.md</code>: the table.</li>\n</ul>",
        "<ul>\n<li>an item\n<ul>\n<li>a nested item</li>\n</ul>\n</li>\n</ul>",
        "<p>A range 3-5, a negative -0.1, a product 2 * 3,\nan em dash — and a flag\n--quiet.</p>",
        "<p>attention 0.699 on JAX (410 right, where always answering ham gets 411 of the\n"
        "587) and 0.666 on PyTorch</p>",
        "<pre><code>text:\n- in a code block\n1. is not a paragraph</code></pre>",
        "<p>Code:</p><div><pre><code>- x</code></pre></div><p>after</p>",
        "<table><tr><td>a cell:\n- is not checked</td></tr></table>",
    ],
)
def test_the_rule_passes_rendered_lists_and_prose(html):
    assert problems_in_html(html) == []


# The built site.


def _site_dir() -> Path:
    value = os.environ.get(SITE_DIR_VARIABLE)
    if not value:
        pytest.skip(
            f"{SITE_DIR_VARIABLE} is not set: build the site with `mkdocs build --strict -d "
            f"site` and run with {SITE_DIR_VARIABLE}=site (`nox -s docs` does both)"
        )
    site = Path(value)
    if not site.is_dir():
        pytest.fail(f"{SITE_DIR_VARIABLE}={value}: no such directory")
    return site


def test_every_built_page_renders_its_lists_as_lists():
    site = _site_dir()
    pages = sorted(site.rglob("*.html"))
    assert (site / "index.html") in pages, f"{site} holds no built site (no index.html)"
    report = [
        f"{page.relative_to(site)}: {problem}"
        for page in pages
        for problem in problems_in_html(page.read_text(encoding="utf-8"))
    ]
    assert not report, (
        "list markers inside paragraphs (a list needs a blank line before it in "
        "Python-Markdown):\n" + "\n".join(report)
    )


# The Markdown sources: nested lists.

FENCE = re.compile(r"^[ \t]*(```|~~~)")
#: A list item indented by a number of spaces that is not a multiple of 4.
LIST_ITEM = re.compile(r"^( *)(?:[-*+]|\d{1,9}\.)[ \t]+\S")


def misindented_list_items(markdown: str) -> list[tuple[int, str]]:
    """(line number, line) of each list item outside code blocks whose indentation is not a
    multiple of 4 spaces: Python-Markdown does not nest it."""
    found, fence = [], None
    for number, line in enumerate(markdown.splitlines(), start=1):
        opening = FENCE.match(line)
        if opening:
            if fence is None:
                fence = opening.group(1)
            elif opening.group(1) == fence:
                fence = None
            continue
        item = LIST_ITEM.match(line)
        if fence is None and item and len(item.group(1)) % 4:
            found.append((number, line))
    return found


def test_the_indentation_rule():
    source = "- item\n  - two spaces\n    - four spaces\n```\n  - in code\n```\n   1. three\n"
    assert misindented_list_items(source) == [(2, "  - two spaces"), (7, "   1. three")]


def test_nested_lists_are_indented_by_four_spaces():
    report = [
        f"docs/{page.relative_to(DOCS_DIR)}:{number}: {line.strip()}"
        for page in sorted(DOCS_DIR.rglob("*.md"))
        for number, line in misindented_list_items(page.read_text(encoding="utf-8"))
    ]
    assert not report, (
        "list items indented by a number of spaces that is not a multiple of 4 (Python-"
        "Markdown nests a list only at 4 spaces):\n" + "\n".join(report)
    )
