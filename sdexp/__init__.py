"""sdexp: parameter-sweep experiments and evaluation for Stable Diffusion."""
__version__ = "0.1.0"


def load_rows(folder):
    """One row per image of a stored sweep (results/<name>), as a pandas DataFrame."""
    from .store import load_rows as _load_rows

    return _load_rows(folder)


__all__ = ["__version__", "load_rows"]
