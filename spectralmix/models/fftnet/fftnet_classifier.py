"""FFTNet sequence classifier: a backbone, pooling and a linear head."""

from __future__ import annotations

import keras

from spectralmix.layers import _checks
from spectralmix.models.base import Task, check_backbone, check_model_kwargs
from spectralmix.models.fftnet.fftnet_backbone import FFTNetBackbone

POOLINGS = ("cls", "mean")


@keras.saving.register_keras_serializable(package="spectralmix")
class FFTNetClassifier(Task):
    """Classifies token sequences: `FFTNetBackbone` → pooling → dropout → dense logits.

    `pooling="cls"` classifies the final state of the backbone's class token (build the
    backbone with `class_token=True`); `"mean"` averages the final states of the real
    (unpadded) tokens. Token id 0 is padding.

    Args:
        backbone: an `FFTNetBackbone` instance.
        num_classes: number of classes.
        pooling: `"cls"` or `"mean"`; defaults to `"cls"` when the backbone has a class
            token, else `"mean"`.
        head_dropout: dropout before the head.
        dtype: dtype policy of the head (the backbone keeps its own).
        **kwargs: base model arguments (`name`).

    Examples:
        >>> import numpy as np
        >>> backbone = FFTNetBackbone(vocabulary_size=20, max_sequence_length=64, hidden_dim=32,
        ...                           num_layers=1, num_heads=4, class_token=True)
        >>> clf = FFTNetClassifier(backbone=backbone, num_classes=10)
        >>> tuple(clf(np.array([[5, 6, 7, 0, 0, 0]])).shape)
        (1, 10)
        >>> listops = FFTNetClassifier.from_preset("fftnet_listops")  # shipped weights
    """

    backbone_class = FFTNetBackbone
    config_keys = ("num_classes", "pooling", "head_dropout")

    def __init__(self, backbone, num_classes, pooling=None, head_dropout=0.0, dtype=None, **kwargs):
        check_model_kwargs(type(self), kwargs)
        check_backbone(backbone, FFTNetBackbone)
        num_classes = _checks.positive_int("num_classes", num_classes)
        if pooling is None:
            pooling = "cls" if backbone.class_token else "mean"
        pooling = _checks.choice("pooling", pooling, POOLINGS)
        if pooling == "cls" and not backbone.class_token:
            raise ValueError(
                "`pooling='cls'` needs a backbone built with `class_token=True`. "
                f"Received: pooling={pooling!r} and a backbone with class_token=False"
            )
        head_dropout = _checks.rate("head_dropout", head_dropout)
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        states = backbone(token_ids)
        if pooling == "cls":
            pooled = states[:, 0]
        else:
            pooled = keras.layers.GlobalAveragePooling1D(dtype=dtype, name="mean_pool")(states)
        pooled = keras.layers.Dropout(head_dropout, dtype=dtype, name="head_dropout")(pooled)
        logits = keras.layers.Dense(num_classes, dtype=dtype, name="head")(pooled)
        super().__init__(inputs=token_ids, outputs=logits, dtype=dtype, **kwargs)
        self.backbone = backbone
        self.num_classes = num_classes
        self.pooling = pooling
        self.head_dropout = head_dropout
