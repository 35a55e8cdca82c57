import gzip
import os
import re

import numpy as np
import pytest

from spectralmix.data import batches, listops


def test_tokens_follow_lra_parentheses_dropped():
    ids = listops.encode("( ( ( [MAX 2 ) ( ( [SM 0 ) 9 ) ] ) ] )")
    assert listops.decode(ids) == "[MAX 2 [SM 0 9 ] ]"
    # Hand-checked ids: PAD 0, CLS 1, digits 2-11, [MIN 12 [MAX 13 [MED 14 [SM 15, ] 16.
    assert ids == [13, 4, 15, 2, 11, 16, 16]
    assert listops.VOCABULARY_SIZE == 17
    assert listops.TOKEN_IDS["[PAD]"] == 0


@pytest.mark.parametrize(
    ("source", "message"),
    [("( [MAX 2 x ] )", "'x'"), ("[CLS] 1", "'[CLS]'"), ("1 " * 2001, "max_length=2000")],
)
def test_bad_expressions_raise_instead_of_truncating(source, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        listops.encode(source)


def test_reader_on_the_shared_test_split(listops_dir):
    split = listops.read_tsv(listops.split_path(listops_dir, "test"))
    assert len(split.token_ids) == len(split.labels) == 2000
    # The data README: lengths 501-1999 tokens after the parentheses are dropped, 10 classes.
    assert split.lengths.min() > 500
    assert split.lengths.max() < 2000
    assert set(np.unique(split.labels)) == set(range(10))
    assert all(t.dtype == np.int32 and t.min() >= 2 for t in split.token_ids)
    first = listops.read_tsv(listops.split_path(listops_dir, "test"), limit=3)
    np.testing.assert_array_equal(first.labels, split.labels[:3])


def test_plain_and_gzip_files_read_the_same(tmp_path):
    rows = "Source\tTarget\n( ( [MIN 3 ) 4 ] )\t3\n( ( ( [SM 7 ) 8 ) ] )\t5\n"
    (tmp_path / "a.tsv").write_text(rows)
    with gzip.open(tmp_path / "a.tsv.gz", "wt") as f:
        f.write(rows)
    plain, zipped = listops.read_tsv(tmp_path / "a.tsv"), listops.read_tsv(tmp_path / "a.tsv.gz")
    np.testing.assert_array_equal(plain.labels, [3, 5])
    np.testing.assert_array_equal(zipped.labels, [3, 5])
    for a, b in zip(plain.token_ids, zipped.token_ids, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("content", "message"),
    [("Input\tLabel\n", "header"), ("Source\tTarget\n[MIN 1 ]\t12\n", "line 2")],
)
def test_malformed_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        listops.read_tsv(path)


ROWS = b"Source\tTarget\n( ( [MIN 3 ) 4 ] )\t3\n( ( ( [SM 7 ) 8 ) ] )\t5\n"


def _gz(data: bytes) -> bytes:
    # mtime=0: the same bytes in every process (pytest-xdist workers must collect equal ids).
    return gzip.compress(data, mtime=0)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.tsv.gz", ROWS, "is not a readable gzip file"),  # plain text named .gz
        ("a.tsv.gz", _gz(ROWS)[:-12], "is not a readable gzip file"),  # truncated
        ("a.tsv.gz", _gz(ROWS)[:12] + b"\0" * 40, "is not a readable gzip file"),
        ("a.tsv", _gz(ROWS), "is gzip-compressed but its name does not end in '.gz'"),
        ("a.tsv", ROWS + b"( [MAX 1 \xff ] )\t1\n", "line 4 is not UTF-8 text: byte b'\\xff'"),
        ("a.tsv.gz", _gz(ROWS.replace(b"[SM", b"[S\xc3")), "line 3 is not UTF-8"),
        ("a.tsv", ROWS + b"( [MAX 1 x ] )\t1\n", "line 4: Unknown ListOps token 'x'"),
    ],
    ids=["text-as-gz", "truncated", "corrupt", "gz-not-named", "bad-byte", "bad-byte-gz", "token"],
)
def test_unreadable_files_raise_one_line_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        listops.read_tsv(path)
    text = str(error.value)
    assert text.startswith(repr(str(path)))
    assert message in text
    assert "\n" not in text


def test_windows_line_ends_read_like_unix_ones(tmp_path):
    (tmp_path / "unix.tsv").write_bytes(ROWS)
    (tmp_path / "windows.tsv").write_bytes(ROWS.replace(b"\n", b"\r\n"))
    unix, windows = (listops.read_tsv(tmp_path / f) for f in ("unix.tsv", "windows.tsv"))
    np.testing.assert_array_equal(unix.labels, windows.labels)
    np.testing.assert_array_equal(windows.labels, [3, 5])


def test_missing_files_and_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="path="):
        listops.read_tsv(tmp_path / "nothing.tsv")
    with pytest.raises(ValueError, match="spectralmix data listops"):
        listops.split_path(tmp_path, "train")
    with pytest.raises(ValueError, match="split='dev'"):
        listops.split_path(tmp_path, "dev")
    (tmp_path / "x.tsv").write_text("Source\tTarget\n")
    with pytest.raises(ValueError, match="limit=0"):
        listops.read_tsv(tmp_path / "x.tsv", limit=0)


def test_buckets_end_at_lra_length_by_default():
    assert listops.bucket_bounds() == batches.bucket_bounds(2000)
    assert listops.bucket_bounds(700, 100) == batches.bucket_bounds(700, 100)


def test_keras_dataset_pads_with_zeros_and_resumes_the_same_epochs():
    rng = np.random.default_rng(1)
    data = listops.ListOps(
        [rng.integers(2, 17, size=n).astype(np.int32) for n in rng.integers(5, 300, size=50)],
        rng.integers(0, 10, size=50).astype(np.int32),
    )
    dataset = listops.bucketed_dataset(data, 8, shuffle=True, seed=5)
    assert len(dataset) == len(dataset.batches)
    assert sorted(np.concatenate([m for _, m in dataset.batches])) == list(range(50))
    token_ids, labels = dataset[0]
    length, members = dataset.batches[0]
    assert token_ids.shape == (len(members), length)
    assert token_ids.dtype == np.int32
    for row, i in zip(token_ids, members, strict=True):
        n = len(data.token_ids[i])
        np.testing.assert_array_equal(row[:n], data.token_ids[i])
        assert not row[n:].any()
    np.testing.assert_array_equal(labels, data.labels[members])
    dataset.on_epoch_end()  # epoch 1's plan
    resumed = listops.bucketed_dataset(data, 8, shuffle=True, seed=5, start_epoch=1)
    assert [m.tolist() for _, m in dataset.batches] == [m.tolist() for _, m in resumed.batches]
    with pytest.raises(ValueError, match="batch_size=0"):
        listops.bucketed_dataset(data, 0)


def test_split_path_prefers_existing_files(tmp_path):
    (tmp_path / "basic_val.tsv").write_text("Source\tTarget\n")
    assert listops.split_path(tmp_path, "val") == os.path.join(str(tmp_path), "basic_val.tsv")


def test_permuting_arguments_keeps_every_value_and_reorders(listops_dir):
    from tests.data.test_listops_generator import stack_value

    data = listops.read_tsv(listops.split_path(listops_dir, "val"), limit=200)
    rng = np.random.default_rng(0)
    changed = 0
    for ids, label in zip(data.token_ids, data.labels, strict=True):
        permuted = listops.permute_arguments(ids, rng)
        assert permuted.dtype == np.int32
        assert len(permuted) == len(ids)
        assert sorted(permuted.tolist()) == sorted(ids.tolist())
        # The independent stack evaluator gives the file's label for the reordered expression.
        assert stack_value(listops.decode(permuted)) == label
        changed += not np.array_equal(permuted, ids)
    assert changed > 190  # nearly every expression has several arguments to reorder
    # Hand-checked: the operator stays first, only arguments move.
    ids = listops.encode("[SM 1 [MIN 4 7 ] 9 ]")
    orders = {
        listops.decode(listops.permute_arguments(ids, np.random.default_rng(s))) for s in range(40)
    }
    assert "[SM 1 [MIN 4 7 ] 9 ]" in orders
    assert "[SM 9 [MIN 7 4 ] 1 ]" in orders
    assert all(o.startswith("[SM ") and o.endswith(" ]") for o in orders)
    assert len(orders) == 12  # 3! orders of the outer arguments × 2 of the inner ones


@pytest.mark.parametrize("source", ["[MAX 1 2", "[MAX 1 ] ]", "1 ]"])
def test_permuting_unbalanced_expressions_raises(source):
    ids = [listops.TOKEN_IDS[t] for t in source.split()]
    with pytest.raises(ValueError, match="Unbalanced"):
        listops.permute_arguments(ids, np.random.default_rng(0))


def test_augmented_batches_are_seeded_per_epoch_and_keep_labels_and_shapes(listops_dir):
    data = listops.read_tsv(listops.split_path(listops_dir, "val"), limit=64)
    plain = listops.bucketed_dataset(data, 16, shuffle=True, seed=3)
    augmented = listops.bucketed_dataset(data, 16, shuffle=True, seed=3, augment=True)
    again = listops.bucketed_dataset(data, 16, shuffle=True, seed=3, augment=True)
    assert len(plain) == len(augmented)
    for i in range(len(plain)):
        (x, y), (xa, ya), (xb, _) = plain[i], augmented[i], again[i]
        assert x.shape == xa.shape
        np.testing.assert_array_equal(y, ya)
        np.testing.assert_array_equal(np.sort(x, axis=1), np.sort(xa, axis=1))
        np.testing.assert_array_equal(xa, xb)  # the same (seed, epoch, batch): the same order
    first = [augmented[i][0] for i in range(len(augmented))]
    augmented.on_epoch_end()
    resumed = listops.bucketed_dataset(data, 16, shuffle=True, seed=3, augment=True, start_epoch=1)
    for i in range(len(augmented)):
        np.testing.assert_array_equal(augmented[i][0], resumed[i][0])
    assert any(
        a.shape != b.shape or not np.array_equal(a, b)
        for a, b in zip(first, [augmented[i][0] for i in range(len(augmented))], strict=True)
    )


def test_the_last_bucket_ends_at_lra_length_whatever_the_longest_expression():
    # FFT mixers depend on the padded length: a split whose longest expression has 1,990
    # tokens is still padded to 2,000 there, as the shipped preset was scored.
    split = listops.ListOps([np.full(1990, 5, np.int32), np.full(100, 5, np.int32)], np.zeros(2))
    shapes = sorted(ids.shape for ids, _ in listops.iter_batches(split, 4))
    assert shapes == [(1, 128), (1, 2000)]
    batch, _ = listops.bucketed_dataset(split, 4, shuffle=True)[0]
    assert batch.shape[1] in (128, 2000)
