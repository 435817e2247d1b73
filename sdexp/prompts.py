"""Prompt sets: inline YAML lists, or a .txt (one per line), .csv (column "prompt") or .yaml file."""
from __future__ import annotations

import csv
from pathlib import Path

import yaml

PROMPT_FILE_SUFFIXES = (".txt", ".csv", ".yaml", ".yml")


def read_prompt_file(path: str) -> list[str]:
    p = Path(path).expanduser()
    if p.suffix.lower() not in PROMPT_FILE_SUFFIXES:
        raise ValueError(f"prompts.file={path!r}: unsupported file type; valid: {', '.join(PROMPT_FILE_SUFFIXES)}")
    if not p.is_file():
        raise ValueError(f"prompts.file={path!r}: file not found ({p.resolve()})")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"prompts.file={path!r} is not UTF-8 text (byte {e.start}: {e.reason}); valid: a UTF-8 "
                         f"{'/'.join(PROMPT_FILE_SUFFIXES)} file") from None
    if p.suffix.lower() == ".txt":
        return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if p.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if "prompt" not in (reader.fieldnames or []):
            raise ValueError(f"prompts.file={path!r}: the CSV needs a 'prompt' column; found {reader.fieldnames}")
        return [row["prompt"].strip() for row in reader if (row["prompt"] or "").strip()]
    data = yaml.safe_load(text)
    if isinstance(data, dict):
        data = data.get("items", data.get("prompts"))
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ValueError(f"prompts.file={path!r}: expected a YAML list of strings (or a mapping with 'items')")
    return [x.strip() for x in data if x.strip()]


def prompt_set(prompt: str | None, items, file: str | None) -> list[str]:
    """The prompts of one job: `prompt` if given, else the file, else the inline items."""
    if prompt is not None:
        prompts = [str(prompt)]
    elif file:
        prompts = read_prompt_file(file)
    else:
        prompts = [str(x) for x in (items or [])]
    prompts = [p for p in prompts if p.strip()]
    if not prompts:
        raise ValueError("prompts: the prompt set is empty; valid: a non-empty prompt=, prompts.items or prompts.file")
    return list(dict.fromkeys(prompts))


def search_replace(values, prompts: list[str], negative_prompt: str) -> list[tuple[str | None, str, str, str]]:
    """Prompt S/R as AUTOMATIC1111 does it: the first value is the search text, and each value
    (the first included) replaces it in prompt and negative prompt.

    Returns (value, template, prompt, negative prompt) per value and prompt; without S/R, one
    (None, template, prompt, negative prompt) per prompt.
    """
    if values is None:
        return [(None, p, p, negative_prompt) for p in prompts]
    values = [str(v) for v in values]
    if not values or not values[0]:
        raise ValueError(f"prompt_sr={values!r}: the first value is the search text and must not be empty; "
                         f"valid: a list such as [cat, dog, fox]")
    if len(set(values)) != len(values):
        raise ValueError(f"prompt_sr={values!r} repeats a value; each value must differ")
    search = values[0]
    missing = [p for p in prompts if search not in p and search not in negative_prompt]
    if missing:
        raise ValueError(f"prompt_sr: the search text {search!r} is in neither the prompt nor the negative prompt "
                         f"of {missing[:3]}; valid: a text found in every prompt of the set")
    return [(v, p, p.replace(search, v), negative_prompt.replace(search, v)) for v in values for p in prompts]
