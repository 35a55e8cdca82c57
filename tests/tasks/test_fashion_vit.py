import keras
import numpy as np

from spectralmix.registry import BUILT_IN
from spectralmix.tasks import fashion_vit, harness
from tests.tasks.test_image import fake_fashion_mnist  # noqa: F401  (a fixture)
from tests.tolerances import TOLERANCES

TINY = {"hidden_dim": 8, "num_layers": 1, "num_heads": 2, "mlp_ratio": 1.0}


def test_images_are_scaled_to_unit_range(fake_fashion_mnist):  # noqa: F811
    directory, arrays = fake_fashion_mnist
    test = fashion_vit.task(directory, val_per_class=1).load(None)["test"]
    assert test.inputs.shape == (3, 28, 28, 1)
    assert test.inputs.dtype == np.float32
    np.testing.assert_allclose(test.inputs[..., 0], arrays["test"][0] / 255.0, rtol=1e-6)


def test_the_three_mixers_share_the_vit(fake_fashion_mnist):  # noqa: F811
    directory, _ = fake_fashion_mnist
    task = fashion_vit.task(directory, val_per_class=1)
    assert task.sequence_length == 50  # 7x7 patches and the class token
    for model in BUILT_IN:
        vit = task.build_model(model, **TINY)
        assert vit.backbone.token_mixer == model
        assert vit.backbone.patch_size == 4


def test_trains_evaluates_and_resumes(fake_fashion_mnist, tmp_path):  # noqa: F811
    directory, _ = fake_fashion_mnist
    task = fashion_vit.task(directory, val_per_class=1)
    out = str(tmp_path / "run")
    metrics = harness.train(task, out, epochs=1, verbose=0, model_options=TINY)
    assert metrics["task"] == "fashion_vit"
    assert metrics["test_examples"] == 3
    again = harness.train(task, out, epochs=1, resume=True, verbose=0, model_options=TINY)
    assert again["test_correct"] == metrics["test_correct"]


def test_hyena_is_bidirectional_so_the_class_token_sees_the_patches(fake_fashion_mnist):  # noqa: F811
    # The class token is the first token: with a causal Hyena it would see only itself, and
    # the logits could not depend on the image (the arena's Hyena sat at chance, 0.10).
    directory, _ = fake_fashion_mnist
    task = fashion_vit.task(directory, val_per_class=1)
    vit = task.build_model("hyena", **TINY)
    images = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    changed = 1.0 - images  # every patch changes; the class token does not

    def logits(model, x):
        return keras.ops.convert_to_numpy(model(x))

    tolerance = TOLERANCES["causality"]
    assert np.abs(logits(vit, images) - logits(vit, changed)).max() > 100 * tolerance
    causal = task.build_model("hyena", token_mixer_kwargs={"causal": True}, **TINY)
    assert np.abs(logits(causal, images) - logits(causal, changed)).max() <= tolerance
