"""Axis values as AUTOMATIC1111's X/Y/Z plot reads them, inside one job.

A value may be a list (`cfg='[3,5,7]'`), a comma list in a string (`cfg='3,5,7'`), or a range:
`1-5` (1, 2, 3, 4, 5: both ends included), `1-10 (+2)` (1, 3, 5, 7, 9: a step), `1-10 [5]`
(five values evenly spaced from 1 to 10, ints truncated as A1111 does), and the same for floats
(`0.5-1.5 (+0.25)`). Text and file values are never split at commas: a prompt is one prompt.
Light to import (no torch).
"""
from __future__ import annotations

import csv
import math
import re

import numpy as np

_UINT = r"\d+"
_UFLOAT = r"\d+(?:\.\d*)?"


def _range(unsigned: str) -> re.Pattern:
    """`start-end`, optionally followed by `(step)` or `[count]`."""
    number = rf"[+-]?\s*{unsigned}"
    return re.compile(rf"\s*({number})\s*-\s*({number})\s*(?:\(\s*({number})\s*\)|\[\s*(\d+)\s*\])?\s*")


INT_RANGE = _range(_UINT)
FLOAT_RANGE = _range(_UFLOAT)
# what makes a value a range, for quoting it before Hydra's parser sees the brackets and spaces
RANGE_HINT = re.compile(rf"^{FLOAT_RANGE.pattern}$")


def _num(text: str) -> str:
    return text.replace(" ", "")


def expand_range(text: str, kind: str) -> list | None:
    """The values of a range string (`kind` "int" or "float"), or None when `text` is not a range."""
    m = (INT_RANGE if kind == "int" else FLOAT_RANGE).fullmatch(text)
    if m is None:
        return None
    cast = int if kind == "int" else float
    start, end = cast(_num(m[1])), cast(_num(m[2]))
    if m[4] is not None:                    # [count]: evenly spaced, both ends included
        values = np.linspace(start, end, int(m[4])).tolist()
        return [int(v) for v in values] if kind == "int" else [round(v, 12) for v in values]
    step = cast(_num(m[3])) if m[3] is not None else cast(1)
    if step == 0:
        raise ValueError("the step of a range must not be 0")
    if kind == "int":
        return list(range(start, end + 1, step))
    return [round(v, 12) for v in np.arange(start, end + step, step).tolist()]


def split_list(text: str) -> list[str]:
    """A comma list as A1111 reads one (CSV, so "a, b" and quoted items with commas both work)."""
    row = next(csv.reader([text], skipinitialspace=True), [])
    return [item.strip() for item in row if item.strip()]


def raw_items(raw) -> list:
    """The items of a config value: a list's items, or the value itself."""
    if isinstance(raw, (list, tuple)) or type(raw).__name__ == "ListConfig":
        return list(raw)
    return [raw]


def expand(raw, kind: str, splits: bool) -> list:
    """Every value an axis setting stands for. `kind` "int"/"float" expands ranges; `splits` reads a
    string as a comma list (never for text and files). Values are returned unconverted."""
    out: list = []
    for item in raw_items(raw):
        if isinstance(item, str) and splits:
            for piece in split_list(item) or [item]:
                expanded = expand_range(piece, kind) if kind in ("int", "float") else None
                if expanded is not None and not expanded:
                    raise ValueError(f"the range {piece!r} holds no values")
                out.extend(expanded if expanded is not None else [piece])
        else:
            out.append(item)
    return out


def to_int(value) -> int:
    if isinstance(value, bool):
        raise ValueError("not an integer")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise ValueError("not an integer")


def to_float(value) -> float:
    if isinstance(value, bool):
        raise ValueError("not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("not a number") from None


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def map_distinct(fn, values) -> list:
    """[fn(v) for v in values], calling fn once per distinct value (columns of 10^5 rows repeat a few)."""
    try:
        memo: dict = {}
        return [memo[v] if v in memo else memo.setdefault(v, fn(v)) for v in values]
    except TypeError:            # unhashable values
        return [fn(v) for v in values]
