"""Every public docstring example runs and prints what it shows."""

import doctest
import importlib

import keras
import pytest

MODULES = [
    "spectralmix.data.batches",
    "spectralmix.data.brown",
    "spectralmix.data.fashion_mnist",
    "spectralmix.data.listops",
    "spectralmix.data.recall",
    "spectralmix.data.listops_generator",
    "spectralmix.data.pathfinder",
    "spectralmix.data.spam_assassin",
    "spectralmix.data.tokens",
    "spectralmix.distribute",
    "spectralmix.flops",
    "spectralmix.layers.adaptive_spectral_filter",
    "spectralmix.layers.class_token",
    "spectralmix.layers.drop_path",
    "spectralmix.layers.fftnet_block",
    "spectralmix.layers.fourier_mixing",
    "spectralmix.layers.global_filter",
    "spectralmix.layers.global_filter_2d",
    "spectralmix.layers.hyena",
    "spectralmix.layers.hyena_filter",
    "spectralmix.layers.metaformer_block",
    "spectralmix.layers.self_attention",
    "spectralmix.layers.mod_relu",
    "spectralmix.layers.position_embedding",
    "spectralmix.models.fftnet.fftnet_backbone",
    "spectralmix.models.fftnet.fftnet_causal_lm",
    "spectralmix.models.fftnet.fftnet_classifier",
    "spectralmix.models.fftnet_vit.fftnet_vit_backbone",
    "spectralmix.models.fftnet_vit.fftnet_vit_image_classifier",
    "spectralmix.models.fftnet_vit.fftnet_vit_layers",
    "spectralmix.schedules",
    "spectralmix.optimizers",
    "spectralmix.registry",
    "spectralmix.tasks.ablation",
    "spectralmix.tasks.arena",
    "spectralmix.tasks.harness",
    "spectralmix.tasks.lm",
    "spectralmix.tasks.recall",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"keras": keras}, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
