"""The report's HTML: one Jinja2 template with autoescape on, so every piece of user text
(prompts, model names, file names) is escaped wherever it lands, in text or in attributes."""
from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).parent / "templates"
ASSETS = Path(__file__).parent / "assets"


def environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render(template: str, context: dict) -> str:
    return environment().get_template(template).render(**context)


def render_index(context: dict) -> str:
    return render("index.html.j2", context)
