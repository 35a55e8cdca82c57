import json
import statistics

import pytest

from spectralmix.tasks import ablation, harness


def test_a_variant_splits_training_keys_from_model_options():
    variant = ablation.parse_variant(
        "v=fnet:hidden_dim=16,learning_rate=0.002,pooling=mean,token_mixer_kwargs.x=0"
    )
    assert variant == {
        "name": "v",
        "model": "fnet",
        "model_options": {"hidden_dim": 16, "pooling": "mean", "token_mixer_kwargs": {"x": 0}},
        "training": {"learning_rate": 0.002},
    }
    assert ablation.parse_variant("plain=hyena") == {
        "name": "plain",
        "model": "hyena",
        "model_options": {},
        "training": {},
    }


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("fnet", ValueError, "NAME=MIXER"),
        ("=fnet", ValueError, "NAME=MIXER"),
        ("v=fnet:hidden_dim", ValueError, "KEY=VALUE. Received: 'hidden_dim'"),
        ("v=no_such_mixer", ValueError, "no_such_mixer"),
        ("../out=fnet", ValueError, "names its directory. .* Received: '../out'"),
        ("/tmp/a=fnet", ValueError, "names its directory"),
        (3, TypeError, "Received: 3"),
    ],
)
def test_a_bad_variant_names_what_was_received(text, error, message):
    with pytest.raises(error, match=message):
        ablation.parse_variant(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variants": ["a=fnet", "a=fnet:hidden_dim=16"]}, "each name once"),
        ({"variants": []}, "each name once"),
        ({"seeds": []}, "one or more distinct"),
        ({"seeds": [1, 1]}, "one or more distinct"),
        ({"updates": 0}, "updates"),
    ],
)
def test_run_rejects_bad_arguments(kwargs, message, tmp_path):
    arguments = {"variants": ["a=fnet"], "seeds": [0, 1], "updates": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        ablation.run("recall_256", out=tmp_path, **arguments)


def test_one_seed_is_a_score_without_spread_and_two_are_summarised():
    assert ablation._over_seeds([0.61]) == {"mean": 0.61, "sd": None, "ci95_over_seeds": None}
    # Two seeds: mean 0.6, sample sd 0.1·√2/2, t(1) = 12.706 (hand-computed).
    two = ablation._over_seeds([0.55, 0.65])
    assert two["mean"] == 0.6
    assert two["sd"] == pytest.approx(0.0707, abs=1e-4)
    assert two["ci95_over_seeds"] == pytest.approx([-0.0353, 1.2353], abs=1e-4)
    run = {"seed": 0, "updates": 5, "train_cpu_seconds": 2.0, "parameters": 1234}
    record = {
        "variants": [
            {
                "name": "a",
                "model": "fnet",
                "model_options": {},
                "training": {},
                "metric": "val_accuracy",
                "mean": 0.61,
                "sd": None,
                "ci95_over_seeds": None,
                "runs": [run],
            }
        ]
    }
    row = ablation.markdown(record).splitlines()[2]
    assert (
        row == "| a | fnet | defaults | 1 | 0.6100 (one seed) | none (one seed) | 5 | 2 | 1,234 |"
    )


@pytest.mark.slow
def test_run_scores_validation_only_summarises_seeds_and_reuses_finished_runs(
    tmp_path, monkeypatch
):
    variants = ["base=fnet", "narrow=fnet:hidden_dim=16,learning_rate=0.002"]
    paths = ablation.run(
        "recall_256", variants, tmp_path, seeds=[0, 1], updates=2, limit=8, verbose=0
    )
    with open(paths["results"]) as f:
        record = json.load(f)
    assert record["test_read"] is False
    base, narrow = record["variants"]
    for variant in (base, narrow):
        runs = variant["runs"]
        assert [r["seed"] for r in runs] == [0, 1]
        assert all(r["test_read"] is False and r["updates"] == 2 for r in runs)
        scores = [r["val_query_accuracy"] for r in runs]
        assert variant["mean"] == pytest.approx(statistics.fmean(scores), abs=1e-4)
        assert variant["sd"] == pytest.approx(statistics.stdev(scores), abs=1e-4)
        for seed in (0, 1):
            run_dir = tmp_path / variant["name"] / f"seed-{seed}"
            metrics = json.loads((run_dir / "metrics.json").read_text())
            assert "test_query_accuracy" not in metrics
    # The settings reached the model and the harness.
    assert narrow["runs"][0]["parameters"] < base["runs"][0]["parameters"]
    state = json.loads((tmp_path / "narrow" / "seed-0" / "state.json").read_text())
    assert state["metadata"]["arguments"]["learning_rate"] == 0.002
    with open(paths["table"]) as f:
        table = f.read().splitlines()
    assert table[2].startswith("| base | fnet | defaults | 2 |")
    assert "hidden_dim=16, learning_rate=0.002" in table[3]

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(harness, "train", no_training)
    again = ablation.run(
        "recall_256", variants, tmp_path, seeds=[0, 1], updates=2, limit=8, verbose=0
    )
    assert again["variants"] == paths["variants"]
    # The same names with other settings are not reused under the new settings.
    changed = ["base=fnet", "narrow=fnet:hidden_dim=24,learning_rate=0.002"]
    with pytest.raises(ValueError, match="other arguments"):
        ablation.run("recall_256", changed, tmp_path, seeds=[0, 1], updates=2, limit=8)
    with pytest.raises(ValueError, match="other arguments"):
        ablation.run("recall_256", variants, tmp_path, seeds=[0, 1], updates=3, limit=8)
