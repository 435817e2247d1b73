"""A1111's X/Y/Z value syntax inside one job: comma lists and the three range forms, ints and floats.

The expected values are written out by hand from A1111's documented meaning (both ends of `a-b`
included, `(+s)` a step, `[n]` n evenly spaced values with ints truncated), not computed by sdexp."""
from __future__ import annotations

import pytest

from sdexp.axis_values import expand, split_list


@pytest.mark.parametrize("text, kind, expected", [
    ("1-5", "int", [1, 2, 3, 4, 5]),
    ("1-10 (+2)", "int", [1, 3, 5, 7, 9]),
    ("1-10 (+3)", "int", [1, 4, 7, 10]),
    ("10-30 (+10)", "int", [10, 20, 30]),
    ("1-10 [5]", "int", [1, 3, 5, 7, 10]),          # linspace 1, 3.25, 5.5, 7.75, 10 truncated
    ("10-1 (-3)", "int", [10, 7, 4]),
    ("0.5-1.5 (+0.25)", "float", [0.5, 0.75, 1.0, 1.25, 1.5]),
    ("1-2 [3]", "float", [1.0, 1.5, 2.0]),
    ("3-7", "float", [3.0, 4.0, 5.0, 6.0, 7.0]),
    ("3, 5, 7", "int", ["3", "5", "7"]),               # a comma list; converted by the axis later
    ("1-3, 10", "int", [1, 2, 3, "10"]),
])
def test_ranges_and_lists(text, kind, expected):
    assert expand(text, kind, True) == expected


def test_text_values_are_never_split():
    assert expand("masterpiece, best quality, a cat", "text", False) == ["masterpiece, best quality, a cat"]
    assert expand(["a cat, sitting", "a dog"], "text", False) == ["a cat, sitting", "a dog"]


def test_lists_and_csv_quoting():
    assert expand([3, "5-6"], "int", True) == [3, 5, 6]
    assert split_list('euler_a, "DPM++ 2M", ddim') == ["euler_a", "DPM++ 2M", "ddim"]


def test_empty_range_and_zero_step_fail():
    with pytest.raises(ValueError, match="holds no values"):
        expand("5-1", "int", True)
    with pytest.raises(ValueError, match="must not be 0"):
        expand("1-5 (+0)", "int", True)
