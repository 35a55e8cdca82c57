import subprocess
import sys

import numpy as np
import pytest

from spectralmix import validation


def test_imports_no_framework_and_no_keras():
    code = (
        "import sys, spectralmix.validation; "
        "print([m for m in ('keras', 'jax', 'tensorflow', 'torch', 'numpy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_accepts_good_values():
    assert validation.positive_int("n", 3) == 3
    assert validation.optional_positive_int("n", None) is None
    assert validation.optional_positive_int("n", 2) == 2
    assert validation.integer("n", np.int64(0)) == 0
    assert type(validation.integer("n", np.int32(3), 1)) is int
    assert validation.optional_integer("n", None, 1) is None
    assert validation.rate("r", 0) == 0.0
    assert validation.positive_float("f", 2) == 2.0
    assert validation.non_negative_float("e", 0) == 0.0
    assert validation.boolean("b", False) is False
    assert validation.choice("c", "v1", ("v1", "v2")) == "v1"
    assert validation.legacy_default({"a": 1}, "e", 0.0) == {"a": 1, "e": 0.0}
    assert validation.legacy_default({"e": 1e-3}, "e", 0.0) == {"e": 1e-3}


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: validation.positive_int("n", 0), ValueError, "`n` must be a positive integer"),
        (lambda: validation.positive_int("n", True), ValueError, "n=True"),
        (lambda: validation.positive_int("n", "3"), ValueError, "n='3'"),
        (lambda: validation.positive_int("n", np.int64(3)), ValueError, "n=np.int64(3)"),
        (lambda: validation.optional_positive_int("limit", 0), ValueError, "limit=0"),
        (lambda: validation.integer("n", 2.0), TypeError, "`n` must be an integer"),
        (lambda: validation.integer("n", False), TypeError, "n=False"),
        (lambda: validation.integer("n", 15, 16), ValueError, "`n` must be >= 16. Received: n=15"),
        (lambda: validation.optional_integer("n", 0, 1), ValueError, "`n` must be >= 1"),
        (lambda: validation.rate("r", 1.5), ValueError, "`r` must be a float in [0, 1)"),
        (lambda: validation.rate("r", True), ValueError, "r=True"),
        (lambda: validation.positive_float("f", 0), ValueError, "`f` must be a positive number"),
        (lambda: validation.non_negative_float("e", -1e-3), ValueError, "e=-0.001"),
        (lambda: validation.non_negative_float("e", "0"), ValueError, "e='0'"),
        (lambda: validation.boolean("b", 1), TypeError, "`b` must be a bool. Received: b=1"),
        (lambda: validation.choice("c", "x", ("a", "b")), ValueError, "one of ['a', 'b']"),
        (lambda: validation.choice("c", "x", ("a",)), ValueError, "Received: c='x'"),
    ],
)
def test_errors_name_the_argument_and_the_value(call, error, message):
    with pytest.raises(error) as raised:
        call()
    text = str(raised.value)
    assert message in text
    name = text[1 : text.index("`", 1)]  # every message starts with the argument's name
    assert text.startswith(f"`{name}` must be ")
    assert f"Received: {name}=" in text


def test_one_line_collapses_whitespace_or_names_the_type():
    assert validation.one_line(ValueError("a\n  b\tc ")) == "a b c"
    assert validation.one_line(KeyError()) == "KeyError"
