"""FFTNet sequence classifier: the backbone, pooling and a linear head."""

from __future__ import annotations

import keras

from spectralmix.layers import _checks
from spectralmix.models.base import ConfiguredModel
from spectralmix.models.fftnet.fftnet_backbone import CONFIG_KEYS, FFTNetBackbone

POOLINGS = ("cls", "mean")


@keras.saving.register_keras_serializable(package="spectralmix")
class FFTNetClassifier(ConfiguredModel):
    """Classifies token sequences: `FFTNetBackbone` → pooling → dropout → dense logits.

    `pooling="cls"` prepends a learned class token and classifies its final state;
    `"mean"` averages the final states of the real (unpadded) tokens. Token id 0 is padding.

    Args:
        vocabulary_size: number of token ids, padding id 0 included.
        num_classes: number of classes.
        max_sequence_length: the length the filters and positions are built for (any length
            runs).
        pooling: `"cls"` or `"mean"`.
        dtype: dtype policy of the layers.
        **kwargs: the other `FFTNetBackbone` arguments (`hidden_dim`, `num_layers`,
            `num_heads`, `mlp_ratio`, `dropout`, `drop_path`, `token_mixer`, `variant`,
            `layer_norm_epsilon`, `fft_impl`, `modrelu_epsilon`) and `name`.

    Examples:
        >>> import numpy as np
        >>> clf = FFTNetClassifier(vocabulary_size=20, num_classes=10, max_sequence_length=64,
        ...                        hidden_dim=32, num_layers=1, num_heads=4)
        >>> tuple(clf(np.array([[5, 6, 7, 0, 0, 0]])).shape)
        (1, 10)
    """

    _config_keys = ("num_classes", "pooling")
    # The class token follows from `pooling`: not a classifier argument.
    _backbone_keys = tuple(k for k in CONFIG_KEYS if k != "class_token")

    def __init__(
        self, vocabulary_size, num_classes, max_sequence_length, pooling="cls", dtype=None, **kwargs
    ):
        backbone_kwargs = self._pop_backbone_kwargs(kwargs)
        num_classes = _checks.positive_int("num_classes", num_classes)
        pooling = _checks.choice("pooling", pooling, POOLINGS)
        backbone = FFTNetBackbone(
            vocabulary_size,
            max_sequence_length,
            class_token=pooling == "cls",
            dtype=dtype,
            name="backbone",
            **backbone_kwargs,
        )
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        states = backbone(token_ids)
        if pooling == "cls":
            pooled = states[:, 0]
        else:
            pooled = keras.layers.GlobalAveragePooling1D(dtype=dtype, name="mean_pool")(states)
        pooled = keras.layers.Dropout(backbone.dropout, dtype=dtype, name="head_dropout")(pooled)
        logits = keras.layers.Dense(num_classes, dtype=dtype, name="head")(pooled)
        super().__init__(inputs=token_ids, outputs=logits, dtype=dtype, **kwargs)
        self.backbone = backbone
        self.num_classes = num_classes
        self.pooling = pooling
