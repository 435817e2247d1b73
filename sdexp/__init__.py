"""sdexp: parameter-sweep experiments and evaluation for Stable Diffusion."""
__version__ = "0.1.0"


def load_rows(folder, columns=None, filters=None):
    """One row per image of a stored sweep (results/<name>), as a pandas DataFrame; `columns` reads
    only those, `filters` is a pyarrow expression or DNF tuples such as [("cfg", ">", 5)]."""
    from .store import load_rows as _load_rows

    return _load_rows(folder, columns, filters)


def load_groups(folder):
    """The group metrics of a stored sweep (FID, KID, mean CLIP score with intervals, paired differences),
    one row per group, metric and statistic, as a pandas DataFrame (README, "Metrics")."""
    from .metrics.tables import load_groups as _load_groups

    return _load_groups(folder)


def load_image_metrics(folder):
    """Per-image metric values `sdexp score` stored (image_id, metric, scorer, value, ...), long format."""
    from .metrics.tables import load_image_metrics as _load_image_metrics

    return _load_image_metrics(folder)


__all__ = ["__version__", "load_rows", "load_groups", "load_image_metrics"]
