"""Axis values that name a file: a name from a `{name: path}` table in the config, or a path.

Used by the LoRA and embedding axes. Resolution reads no weights; it only checks that the
file exists and has an allowed suffix, so a bad value fails before any model loads.
"""
from __future__ import annotations

from pathlib import Path

OFF_VALUES = (None, "", "none", "None", "null")


def resolve_named_file(key: str, value, table, suffixes: tuple[str, ...], table_key: str,
                       pickle_suffixes: tuple[str, ...] = (), allow_pickle: bool = False,
                       pickle_flag: str = "") -> tuple[str, Path] | None:
    """(name, absolute path) for an axis value, or None when the value switches the axis off."""
    if value in OFF_VALUES:
        return None
    value = str(value)
    table = dict(table or {})
    if value in table:
        name, path = value, Path(str(table[value])).expanduser()
    else:
        name, path = Path(value).stem, Path(value).expanduser()
        if not path.suffix:
            names = ", ".join(repr(n) for n in table) or f"none defined in {table_key}"
            raise ValueError(f"{key}={value!r} is not a name in {table_key} ({names}) nor a file path; "
                             f"valid: one of those names, a {'/'.join(suffixes)} file, or 'none'")
    where = f"{table_key}.{value}" if value in table else key
    if path.suffix.lower() not in suffixes + pickle_suffixes:
        raise ValueError(f"{where}={str(path)!r}: unsupported file type {path.suffix!r}; "
                         f"valid: {', '.join(suffixes + pickle_suffixes)}")
    if not path.is_file():
        raise ValueError(f"{where}={str(path)!r}: file not found ({path.resolve()})")
    if path.suffix.lower() in pickle_suffixes and not allow_pickle:
        raise ValueError(f"{where}={str(path)!r} is a pickle, which can run code when loaded; convert it to "
                         f".safetensors or set {pickle_flag}=true (it is then read with "
                         f"torch.load(weights_only=True))")
    return name, path.resolve()
