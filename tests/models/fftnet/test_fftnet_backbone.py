import keras
import numpy as np
import pytest

from spectralmix.models import FFTNetBackbone
from tests.helpers import assert_close, to_numpy

SMALL = dict(vocabulary_size=20, max_sequence_length=12, hidden_dim=16, num_layers=2, num_heads=2)


def test_padding_becomes_a_mask_through_every_layer():
    backbone = FFTNetBackbone(**SMALL, class_token=True)
    ids = np.array([[3, 4, 5, 0, 0], [6, 0, 0, 0, 0]])
    states = backbone(ids)
    mask = to_numpy(states._keras_mask)
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])


@pytest.mark.parametrize("length", [5, 12, 30])
def test_any_length(length):
    backbone = FFTNetBackbone(**SMALL)
    ids = np.random.default_rng(0).integers(1, 20, (2, length))
    out = to_numpy(backbone(ids))
    assert out.shape == (2, length, 16)
    assert np.isfinite(out).all()


def test_config_round_trip():
    backbone = FFTNetBackbone(**SMALL, token_mixer="fnet", norm_first=True, dropout=0.1)
    assert FFTNetBackbone.from_config(backbone.get_config()).get_config() == (backbone.get_config())
    fftnet = FFTNetBackbone(**SMALL, token_mixer_kwargs={"variant": "v2"}, norm_first=True)
    config = fftnet.get_config()
    assert config["token_mixer_kwargs"] == {"variant": "v2"}
    assert config["norm_first"] is True
    clone = FFTNetBackbone.from_config(config)
    assert clone.get_config() == config
    assert clone.get_layer("block_1").mixer.variant == "v2"
    assert clone.get_layer("block_1").norm_first


def test_config_is_the_constructor_arguments():
    backbone = FFTNetBackbone(**SMALL, class_token=True)
    config = backbone.get_config()
    assert set(config) == {"name", "trainable", "dtype", *FFTNetBackbone.config_keys}
    assert {k: config[k] for k in SMALL} == SMALL
    assert (config["token_mixer"], config["token_mixer_kwargs"]) == ("fftnet", {})
    assert (config["norm_first"], config["class_token"]) == (False, True)
    assert backbone.token_mixer_arguments == {"num_heads": 2, "max_sequence_length": 13}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vocabulary_size": 0}, "vocabulary_size=0"),
        ({"max_sequence_length": None}, "max_sequence_length=None"),
        ({"num_heads": 3}, "num_heads=3, hidden_dim=16"),
        ({"class_token": 1}, "class_token=1"),
        ({"norm_first": "yes"}, "norm_first='yes'"),
        ({"token_mixer": "mlp"}, "token_mixer='mlp'"),
        ({"token_mixer_kwargs": ["variant"]}, r"token_mixer_kwargs=\['variant'\]"),
        ({"token_mixer_kwargs": {"variant": "v3"}}, "variant='v3'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        FFTNetBackbone(**{**SMALL, **kwargs})


@pytest.mark.parametrize("token_mixer", ["fftnet", "fnet"])
def test_fft_impl_is_a_mixer_argument_and_keeps_the_function(token_mixer):
    backbone = FFTNetBackbone(**SMALL, token_mixer=token_mixer)
    config = backbone.get_config()
    assert backbone.get_layer("block_0").mixer.fft_impl == "fft"
    dft_backbone = FFTNetBackbone.from_config({**config, "token_mixer_kwargs": {"fft_impl": "dft"}})
    dft_backbone.set_weights(backbone.get_weights())
    assert dft_backbone.get_config()["token_mixer_kwargs"] == {"fft_impl": "dft"}
    assert dft_backbone.get_layer("block_1").mixer.fft_impl == "dft"
    ids = np.random.default_rng(0).integers(0, 20, (2, 11))
    np.testing.assert_allclose(
        to_numpy(dft_backbone(ids)), to_numpy(backbone(ids)), rtol=1e-4, atol=1e-4
    )
    with pytest.raises(ValueError, match="fft_impl='FFT'"):
        FFTNetBackbone(**SMALL, token_mixer_kwargs={"fft_impl": "FFT"})


def test_legacy_config_is_refused_with_the_conversion_to_run():
    config = FFTNetBackbone(**SMALL).get_config()
    del config["token_mixer_kwargs"], config["norm_first"]
    config.update(variant="v1", fft_impl="fft", modrelu_epsilon=1e-3)
    with pytest.raises(ValueError, match=r"convert_legacy_file\(old_path, new_path\)"):
        FFTNetBackbone.from_config(config)


# keras.Model (Functional) ignores keyword arguments it does not know: the backbones refuse
# them instead of building, say, a v1 FFT model for variant="v2", fft_impl="dft".
@pytest.mark.parametrize(
    ("flat", "expected"),
    [({"variant": "v2"}, {"variant": "v2"}), ({"fft_impl": "dft"}, {"fft_impl": "dft"})],
    ids=["variant", "fft_impl"],
)
def test_flat_mixer_arguments_are_never_silently_ignored(flat, expected):
    """Either refused, naming the argument, or mapped to `token_mixer_kwargs`; never dropped."""
    (argument,) = flat
    try:
        backbone = FFTNetBackbone(**SMALL, **flat)
    except (TypeError, ValueError) as error:
        message = str(error)
    else:
        message = None
        assert backbone.token_mixer_kwargs == expected, "the argument was dropped"
    assert message is None or argument in message


def test_remat_keeps_the_outputs_and_the_training_step():
    """One SGD step of a backbone with remat moves every weight as without it."""
    ids = np.random.default_rng(1).integers(0, 20, (2, 12))  # some padding (id 0) too
    target = np.random.default_rng(2).standard_normal((2, 12, 16)).astype("float32")
    results = []
    for remat in (False, True):
        backbone = FFTNetBackbone(**SMALL, remat=remat)
        if results:
            backbone.set_weights(results[0][0])
        before = backbone.get_weights()
        outputs = to_numpy(backbone(ids))
        backbone.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        backbone.train_on_batch(ids, target)
        results.append((before, outputs, backbone.get_weights()))
    (before, plain_out, plain), (_, remat_out, rematerialised) = results
    assert_close(remat_out, plain_out)
    for got, want in zip(rematerialised, plain, strict=True):
        assert_close(got, want, "float32_model")
    assert any(not np.allclose(a, b) for a, b in zip(before, plain, strict=True))


def test_remat_config_round_trip_and_bad_values():
    backbone = FFTNetBackbone(**SMALL, remat="mlp")
    config = backbone.get_config()
    assert config["remat"] == "mlp"
    assert all(backbone.get_layer(f"block_{i}").remat == "mlp" for i in range(2))
    assert FFTNetBackbone.from_config(config).get_config() == config
    del config["remat"]  # saved before `remat` existed
    assert FFTNetBackbone.from_config(config).remat is False
    with pytest.raises(ValueError, match="remat='all'"):
        FFTNetBackbone(**SMALL, remat="all")
    with pytest.raises(ValueError, match="dropout=0.1"):
        FFTNetBackbone(**SMALL, remat=True, dropout=0.1)


# --- parameters that do not grow with the length ------------------------------------------


def test_filter_bins_and_num_positions_reach_the_layers():
    backbone = FFTNetBackbone(
        **{**SMALL, "max_sequence_length": 64}, filter_bins=5, num_positions=8
    )
    mixer = backbone.get_layer("block_0").mixer
    assert (mixer.filter_bins, mixer.filter_length) == (5, 8)
    table = backbone.get_layer("position_embedding")
    assert (table.max_sequence_length, table.span) == (8, 64)
    assert backbone(np.arange(39)[None] % 19 + 1).shape == (1, 39, 16)
    config = backbone.get_config()
    assert (config["filter_bins"], config["num_positions"]) == (5, 8)
    restored = FFTNetBackbone.from_config(config)
    assert restored.count_params() == backbone.count_params()


def test_defaults_keep_a_row_per_position_and_a_bin_per_frequency_up_to_4096():
    backbone = FFTNetBackbone(**SMALL)
    assert backbone.get_layer("position_embedding").max_sequence_length == 12
    assert backbone.get_layer("block_0").mixer.base_filter.shape == (2, 7)


def test_a_model_for_a_million_tokens_has_at_most_twice_the_parameters_of_4096():
    from spectralmix.flops import count_parameters

    config = dict(vocabulary_size=256, hidden_dim=64, num_layers=4, num_heads=4)
    built = FFTNetBackbone(max_sequence_length=4096, **config)  # built, never run at 1M
    at_4096 = count_parameters(built)
    assert at_4096 == built.count_params()
    at_1m = count_parameters(built, 1_048_576)
    assert at_1m <= 2 * at_4096, (at_1m, at_4096)
    per_bin = {"filter_bins": 524_289, "num_positions": 1_048_576}
    assert count_parameters({"family": "fftnet", **config, **per_bin}, 1_048_576) > 200 * at_4096


def test_configs_saved_before_filter_bins_and_num_positions_load_with_their_shapes(tmp_path):
    import keras

    backbone = FFTNetBackbone(**SMALL, class_token=True)
    config = backbone.get_config()
    old = {k: v for k, v in config.items() if k not in ("filter_bins", "num_positions")}
    restored = FFTNetBackbone.from_config(old)
    assert restored.get_layer("position_embedding").max_sequence_length == 13
    assert restored.get_layer("block_0").mixer.base_filter.shape == (2, 7)
    # Beyond 4,096 tokens the defaults would now differ: the old shapes come back.
    long = FFTNetBackbone.from_config({**old, "max_sequence_length": 5000, "num_layers": 1})
    assert long.get_layer("position_embedding").max_sequence_length == 5001
    assert long.get_layer("block_0").mixer.base_filter.shape == (2, 5001 // 2 + 1)
    path = str(tmp_path / "backbone.keras")
    backbone.save(path)
    loaded = keras.saving.load_model(path)
    ids = np.array([[3, 4, 5, 6, 0]])
    np.testing.assert_allclose(to_numpy(loaded(ids)), to_numpy(backbone(ids)), atol=1e-6)


def test_cached_generation_reads_the_spread_positions_as_a_full_call():
    backbone = FFTNetBackbone(
        **{**SMALL, "max_sequence_length": 16, "num_layers": 1},
        token_mixer="attention",
        token_mixer_kwargs={"causal": True},
        num_positions=5,
    )
    ids = np.arange(1, 11)[None]
    full = to_numpy(backbone(ids))
    # Causal: a prefix gets the same outputs (its position vectors do not depend on the length).
    np.testing.assert_allclose(to_numpy(backbone(ids[:, :6])), full[:, :6], atol=1e-5)
    cache = backbone.init_cache(1, 16)
    for i in range(10):
        step, cache = backbone.call_with_cache(ids[:, i : i + 1], cache, i)
        np.testing.assert_allclose(to_numpy(step)[:, 0], full[:, i], atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_positions": 0}, ValueError, "num_positions=0"),
        ({"num_positions": 13}, ValueError, "num_positions=13"),
        ({"filter_bins": 1}, ValueError, "filter_bins=1"),
    ],
)
def test_bad_filter_bins_and_num_positions(kwargs, error, match):
    with pytest.raises(error, match=match):
        FFTNetBackbone(**SMALL, **kwargs)
