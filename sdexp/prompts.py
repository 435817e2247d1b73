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
    text = p.read_text(encoding="utf-8")
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
