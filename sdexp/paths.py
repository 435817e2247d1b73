"""Where the project's config folders live (the repository's conf/ and sweeps/)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"
SWEEPS_DIR = ROOT / "sweeps"
