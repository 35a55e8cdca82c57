import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from spectralmix.schedules import PerUpdate


def _base():
    return keras.optimizers.schedules.PiecewiseConstantDecay([1, 3], [1.0, 0.5, 0.25])


def test_counts_the_schedule_in_updates():
    schedule = PerUpdate(_base(), accumulate=3)
    rates = [float(schedule(step)) for step in range(13)]
    # Steps 0-5 are updates 0-1, 6-8 update 2, 9-11 update 3, 12 update 4.
    assert rates == [1.0] * 6 + [0.5] * 6 + [0.25]
    assert [float(PerUpdate(_base(), 1)(s)) for s in (1, 2)] == [1.0, 0.5]


def test_serializes_under_the_spectralmix_package():
    schedule = PerUpdate(_base(), accumulate=2)
    config = keras.saving.serialize_keras_object(schedule)
    assert keras.saving.get_registered_name(PerUpdate) == "spectralmix>PerUpdate"
    again = keras.saving.deserialize_keras_object(config)
    assert isinstance(again, PerUpdate)
    assert again.accumulate == 2
    assert [float(again(s)) for s in (3, 4, 8)] == [1.0, 0.5, 0.25]


_LOAD = """
import sys
import keras
{imports}
model = keras.saving.load_model(sys.argv[1])
schedule = model.optimizer._learning_rate
print(type(schedule).__name__, schedule.accumulate, model.optimizer.gradient_accumulation_steps)
"""


def _load_in_a_new_process(path, imports):
    return subprocess.run(
        [sys.executable, "-c", _LOAD.format(imports=imports), path],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": keras.config.backend()},
        timeout=300,
    )


@pytest.fixture(scope="module")
def accumulated_model_file(tmp_path_factory):
    """A model compiled as `spectralmix.tasks.harness.compile_model` does with accumulation,
    trained one epoch and saved."""
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    schedule = PerUpdate(keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=10), 2)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, gradient_accumulation_steps=2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(np.ones((8, 3)), np.zeros(8), batch_size=2, verbose=0)
    path = str(tmp_path_factory.mktemp("schedules") / "model.keras")
    model.save(path)
    return path


def test_a_model_compiled_with_it_loads_where_spectralmix_layers_are_imported(
    accumulated_model_file,
):
    loaded = _load_in_a_new_process(accumulated_model_file, "import spectralmix.layers")
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.split() == ["PerUpdate", "2", "2"]


def test_without_spectralmix_the_optimizer_cannot_load(accumulated_model_file):
    # The test above is meaningful: Keras alone cannot rebuild the optimizer.
    loaded = _load_in_a_new_process(accumulated_model_file, "")
    assert loaded.returncode != 0
    assert "PerUpdate" in loaded.stderr
