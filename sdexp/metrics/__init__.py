"""Metrics: a registry of what each metric is, and their implementations.

registry.py       what each metric is (name, direction, per image or per group) and the plugin hook
clip_backends.py  CLIP score with transformers CLIP or open_clip
inception.py      Inception features (torch-fidelity's network), extracted once per image and stored
fid.py, kid.py    FID and KID from features or statistics
reference.py      what a group is compared against (a folder, an .npz, a cell or group of the sweep)
groups.py         grouping and the per-group numbers (means with intervals, paired differences, FID, KID)
tables.py         the image_metrics and groups Parquet tables (sdexp.load_groups)
"""
