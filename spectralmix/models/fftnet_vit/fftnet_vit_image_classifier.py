"""FFTNetViT image classifier: the backbone and a linear head on the class token."""

from __future__ import annotations

import keras

from spectralmix.layers import _checks
from spectralmix.models.base import Task, check_backbone, check_model_kwargs
from spectralmix.models.fftnet_vit.fftnet_vit_backbone import FFTNetViTBackbone


@keras.saving.register_keras_serializable(package="spectralmix")
class FFTNetViTImageClassifier(Task):
    """An `FFTNetViTBackbone` with a dense head on the final class token (logits out).

    Args:
        backbone: an `FFTNetViTBackbone` instance.
        num_classes: number of classes.
        head_dropout: dropout before the head.
        dtype: dtype policy of the head (the backbone keeps its own).
        **kwargs: base model arguments (`name`).

    Examples:
        >>> import numpy as np
        >>> backbone = FFTNetViTBackbone(image_size=32, patch_size=8, hidden_dim=32,
        ...                              num_layers=1, num_heads=4)
        >>> model = FFTNetViTImageClassifier(backbone=backbone, num_classes=10)
        >>> tuple(model(np.zeros((2, 32, 32, 3), "float32")).shape)
        (2, 10)
        >>> vit = FFTNetViTImageClassifier.from_preset("fftnet_vit_tiny_patch16_224",
        ...                                            token_mixer="attention", num_layers=1)
    """

    backbone_class = FFTNetViTBackbone
    config_keys = ("num_classes", "head_dropout")

    def __init__(self, backbone, num_classes=1000, head_dropout=0.0, dtype=None, **kwargs):
        check_model_kwargs(type(self), kwargs)
        check_backbone(backbone, FFTNetViTBackbone)
        num_classes = _checks.positive_int("num_classes", num_classes)
        head_dropout = _checks.rate("head_dropout", head_dropout)
        images = keras.Input((None, None, backbone.num_channels), name="images")
        tokens = backbone(images)
        x = tokens[:, 0]
        x = keras.layers.Dropout(head_dropout, dtype=dtype, name="head_dropout")(x)
        logits = keras.layers.Dense(num_classes, dtype=dtype, name="head")(x)
        super().__init__(inputs=images, outputs=logits, dtype=dtype, **kwargs)
        self.backbone = backbone
        self.num_classes = num_classes
        self.head_dropout = head_dropout
