"""Learning-rate schedules of spectralmix, serializable under the package name "spectralmix".

`spectralmix.layers` imports this module, so every load path that can rebuild a spectralmix
model (it imports the layers first) can also rebuild an optimizer that uses these schedules.
"""

from __future__ import annotations

import keras

__all__ = ["PerUpdate"]


@keras.saving.register_keras_serializable(package="spectralmix")
class PerUpdate(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule` counted in optimizer updates when each update accumulates `accumulate`
    batches. Keras evaluates a schedule at its step counter, which under
    `gradient_accumulation_steps` counts every accumulated batch; this divides it back, so a
    run with accumulation follows the schedule of the same run without.

    Examples:
        >>> import keras
        >>> base = keras.optimizers.schedules.PiecewiseConstantDecay([2], [1.0, 0.5])
        >>> schedule = PerUpdate(base, accumulate=2)
        >>> [float(schedule(step)) for step in (0, 5, 6)]
        [1.0, 1.0, 0.5]
    """

    def __init__(self, schedule, accumulate):
        self.schedule = schedule
        self.accumulate = int(accumulate)

    def __call__(self, step):
        return self.schedule(keras.ops.floor_divide(step, self.accumulate))

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "accumulate": self.accumulate,
        }

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["accumulate"])
