import pytest

from spectralmix.layers import _checks


def test_accepts_good_values():
    assert _checks.positive_int("n", 3) == 3
    assert _checks.optional_positive_int("n", None) is None
    assert _checks.rate("r", 0) == 0.0
    assert _checks.positive_float("f", 2) == 2.0
    assert _checks.non_negative_float("e", 0) == 0.0
    assert _checks.legacy_default({"a": 1}, "e", 0.0) == {"a": 1, "e": 0.0}
    assert _checks.legacy_default({"e": 1e-3}, "e", 0.0) == {"e": 1e-3}
    assert _checks.choice("c", "v1", _checks.VARIANTS) == "v1"
    assert _checks.sequence_shape("L", (None, 8, 4), 2) == (None, 8, 4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: _checks.positive_int("n", True), "n=True"),
        (lambda: _checks.positive_int("n", "3"), "n='3'"),
        (lambda: _checks.rate("r", 1.5), "r=1.5"),
        (lambda: _checks.positive_float("f", 0), "f=0"),
        (lambda: _checks.non_negative_float("e", -1e-3), "e=-0.001"),
        (lambda: _checks.non_negative_float("e", "0"), "e='0'"),
        (lambda: _checks.choice("c", "x", ["a"]), "c='x'"),
        (lambda: _checks.sequence_shape("L", (None, 4), None), r"input_shape=\(None, 4\)"),
        (lambda: _checks.sequence_shape("L", (None, 4, 6), 4), "num_heads=4"),
    ],
)
def test_errors_name_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()
