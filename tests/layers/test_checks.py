import pytest

from spectralmix import validation
from spectralmix.layers import _checks


def test_reexports_the_generic_checks():
    for name in ("positive_int", "optional_positive_int", "rate", "positive_float"):
        assert getattr(_checks, name) is getattr(validation, name)
    for name in ("non_negative_float", "boolean", "choice", "legacy_default"):
        assert getattr(_checks, name) is getattr(validation, name)
    assert _checks.choice("c", "v1", _checks.VARIANTS) == "v1"


def test_accepts_good_shapes():
    assert _checks.sequence_shape("L", (None, 8, 4), 2) == (None, 8, 4)
    assert _checks.sequence_shape("L", (2, 8, 4)) == (2, 8, 4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: _checks.sequence_shape("L", (None, 4), None), r"input_shape=\(None, 4\)"),
        (lambda: _checks.sequence_shape("L", (None, 4, None)), r"input_shape=\(None, 4, None\)"),
        (lambda: _checks.sequence_shape("L", (None, 4, 6), 4), "num_heads=4"),
    ],
)
def test_errors_name_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()
