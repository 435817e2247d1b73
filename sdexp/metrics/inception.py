"""Inception features for FID and KID, extracted once per image and kept in the store.

The network is torch-fidelity's InceptionV3 (the TensorFlow FID graph ported to PyTorch), used through
torchmetrics' NoTrainInceptionV3, with the 2048-d pool3 features. Resizing to 299x299:

- resize=tf1 (default): TensorFlow 1.x bilinear, as torch-fidelity and the original TF FID code do;
  the same as torchmetrics with `antialias=False`. Values are comparable with published FIDs.
- resize=antialias: torch bilinear with antialiasing, torchmetrics >= 1.8's default.

Weights: torch-fidelity's `weights-inception-2015-12-05-6726825d.pth`, read from `inception.weights=PATH`
or else `$TORCH_HOME/hub/checkpoints/` (torch.hub's cache, `~/.cache/torch/hub/checkpoints/` by default).
sdexp never downloads it: the error message says where to get it and where to put it. The file is read
with `torch.load(weights_only=True)`; no code in it runs.

Features are stored per image under results/<name>/features/<extractor key>/part-*.parquet (image_id,
features), where the key names the weights' sha256 and the resize mode, so regrouping or a new
reference reuses them. A reference folder's features are kept beside them, under
features/<key>/references/<sha256 of the folder's content>.npy.
"""
from __future__ import annotations

import io
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + WEIGHTS_FILE
OFFICIAL_SHA256_PREFIX = "6726825d"      # torch.hub names files by the first digits of their sha256
RESIZE_MODES = {"tf1": False, "antialias": True}   # resize mode -> torchmetrics' `antialias`
RESIZE_NAMES = {"tf1": "tf1-bilinear (torch-fidelity; torchmetrics antialias=False)",
                "antialias": "bilinear-antialias (torchmetrics >= 1.8 default)"}
FEATURE_DIM = 2048
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def default_weights_path() -> Path:
    """Where torch.hub (and so torch-fidelity and torchmetrics) caches the weights: $TORCH_HOME/hub/checkpoints/,
    $TORCH_HOME defaulting to $XDG_CACHE_HOME/torch, i.e. ~/.cache/torch (torch.hub.get_dir()'s rule)."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(torch_home).expanduser() / "hub" / "checkpoints" / WEIGHTS_FILE


def missing_weights_message(path: Path, configured: bool) -> str:
    where = f"inception.weights={str(path)!r}" if configured else f"inception.weights=null (looked in {path})"
    return (f"{where}: Inception weights file not found. sdexp does not download it. Get {WEIGHTS_FILE} "
            f"({WEIGHTS_URL}) and put it in {default_weights_path().parent}/ ($TORCH_HOME/hub/checkpoints/), "
            f"or pass inception.weights=/path/to/{WEIGHTS_FILE}")


def resolve_weights(path: str | Path | None) -> Path:
    """The weights file: the configured path, else torch.hub's cache. FileNotFoundError says what to do."""
    target = Path(path).expanduser() if path else default_weights_path()
    if not target.is_file():
        raise FileNotFoundError(missing_weights_message(target, path is not None))
    return target


def _placeholder_state():
    """An empty state dict handed to torch-fidelity's constructor (which would otherwise download, or
    unpickle the real file with weights_only=False); the real weights are loaded afterwards."""
    import torch

    buf = io.BytesIO()
    torch.save({}, buf)
    buf.seek(0)
    return buf


def _network_class():
    from torchmetrics.image.fid import NoTrainInceptionV3

    class InceptionV3Features(NoTrainInceptionV3):
        """torch-fidelity's InceptionV3 via torchmetrics' NoTrainInceptionV3, 2048-d pool3 features."""

        def __init__(self, state_dict: dict, antialias: bool):
            super().__init__("inception-v3-compat", ["2048"], feature_extractor_weights_path=_placeholder_state(),
                             antialias=antialias)
            if state_dict:
                self.load_state_dict(state_dict)

        def load_state_dict(self, state_dict, strict=True, assign=False):
            if not state_dict:       # the placeholder, during construction
                return None
            return super().load_state_dict(state_dict, strict=strict, assign=assign)

    return InceptionV3Features


def load_network(weights: Path, resize: str = "tf1", device="cpu"):
    import torch

    state = torch.load(weights, map_location="cpu", weights_only=True)
    return _network_class()(state, RESIZE_MODES[resize]).to(device)


def make_random_weights(path: Path, seed: int = 0) -> Path:
    """Write a weights file in the layout of the real one with seeded random weights (He-initialised
    convolutions, so features are not vanishingly small): for tests and demos, loaded through the same
    `inception.weights=` path as the real file."""
    import torch

    net = _network_class()({}, False)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(module, torch.nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) / module.weight.shape[1] ** 0.5)
                module.bias.zero_()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


class InceptionExtractor:
    """Inception features of uint8 RGB images; the network loads on first use only."""

    def __init__(self, weights: str | Path | None = None, resize: str = "tf1", device="cpu", batch_size: int = 32):
        from ..hashing import file_sha256

        if resize not in RESIZE_MODES:
            raise ValueError(f"inception.resize={resize!r} is not valid; valid: {', '.join(RESIZE_MODES)}")
        self.weights = resolve_weights(weights)
        self.sha256 = file_sha256(self.weights)
        self.official = self.sha256.startswith(OFFICIAL_SHA256_PREFIX)
        self.resize = resize
        self.device = device
        self.batch_size = batch_size
        self.key = f"inception-{self.sha256[:12]}-{resize}"       # folder name of the stored features
        self.name = f"inception-v3-tf-2015-12-05:{self.sha256[:12]}" if self.official \
            else f"inception-v3-compat:{self.sha256[:12]}"
        self._net = None

    @property
    def warning(self) -> str:
        if self.official:
            return ""
        return (f"Inception weights {self.weights.name} (sha256 {self.sha256[:12]}) are not torch-fidelity's "
                f"{WEIGHTS_FILE}: values are not comparable with published FIDs")

    @property
    def net(self):
        if self._net is None:
            self._net = load_network(self.weights, self.resize, self.device)
        return self._net

    def features(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, 2048) float32 features of HxWx3 uint8 images (batched by size, in input order)."""
        import torch

        out = np.zeros((len(images), FEATURE_DIM), dtype=np.float32)
        by_size: dict[tuple, list[int]] = {}
        for i, im in enumerate(images):
            by_size.setdefault(im.shape, []).append(i)
        for idx in by_size.values():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start:start + self.batch_size]
                x = torch.from_numpy(np.stack([images[i] for i in chunk])).permute(0, 3, 1, 2).contiguous()
                with torch.no_grad():
                    out[chunk] = self.net(x.to(self.device)).float().cpu().numpy()
        return out


class FeatureStore:
    """results/<name>/features/<key>/part-*.parquet: one row per image (image_id, features), append-only."""

    def __init__(self, folder: Path | str, key: str):
        self.dir = Path(folder) / "features" / key

    def parts(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet")) if self.dir.is_dir() else []

    def load(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for part in self.parts():
            table = pq.read_table(part)
            ids = table.column("image_id").to_pylist()
            feats = np.asarray(table.column("features").combine_chunks().flatten(), dtype=np.float32)
            for i, f in zip(ids, feats.reshape(len(ids), -1)):
                out[i] = f
        return out

    def add(self, image_ids: list[str], features: np.ndarray) -> Path | None:
        from ..store import atomic_write_bytes

        if not image_ids:
            return None
        self.dir.mkdir(parents=True, exist_ok=True)
        arr = pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(features, np.float32).ravel()),
                                                features.shape[1])
        table = pa.table({"image_id": pa.array(image_ids, pa.string()), "features": arr})
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        path = self.dir / f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        atomic_write_bytes(path, buf.getvalue().to_pybytes())
        return path


def local_extract(extractor):
    """The default `extract`: chunks of image paths -> their features, in order, in this process."""
    return lambda chunks: (extractor.features([load_rgb(p) for p in chunk]) for chunk in chunks)


def store_features(folder: Path, image_ids: list[str], paths: list[Path], extractor: InceptionExtractor,
                   force: bool = False, chunk: int = 256, log=print, extract=None) -> np.ndarray:
    """Features of the sweep's images in the given order, extracting (and storing) only missing ones.
    `extract` (default: local_extract(extractor)) maps chunks of paths to their features in order;
    sdexp.ray_features.ray_extract computes them on a Ray cluster."""
    fs = FeatureStore(folder, extractor.key)
    old_parts = fs.parts()
    have = {} if force else fs.load()
    todo = [(i, p) for i, p in zip(image_ids, paths) if i not in have]
    todo = list(dict(todo).items())        # one extraction per image_id
    if todo:
        log(f"sdexp: {getattr(extractor, 'what', 'Inception')} features for {len(todo)} images "
            f"({len(have)} already stored)")
    parts = [todo[start:start + chunk] for start in range(0, len(todo), chunk)]
    extracted = (extract or local_extract(extractor))([[p for _, p in part] for part in parts])
    for part, feats in zip(parts, extracted, strict=True):      # strict: the extractor runs to its end
        fs.add([i for i, _ in part], feats)
        have.update({i: f for (i, _), f in zip(part, feats)})
    if force:                              # the recomputed parts replace the earlier ones
        for p in old_parts:
            p.unlink(missing_ok=True)
    dim = getattr(extractor, "dim", FEATURE_DIM)
    return np.stack([have[i] for i in image_ids]) if image_ids else np.zeros((0, dim), np.float32)


def reference_images(folder: Path) -> list[Path]:
    """Image files of a reference folder (recursively), in a fixed order."""
    return sorted((p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: p.relative_to(folder).as_posix())


def folder_features(store_folder: Path, ref_folder: Path, files: list[Path], content_hash: str,
                    extractor: InceptionExtractor, force: bool = False, log=print, extract=None) -> np.ndarray:
    """Features of a reference folder, kept in the sweep's store as
    features/<key>/references/<content hash>.npy (the same folder content is never extracted twice)."""
    from ..store import atomic_write_bytes

    dim = getattr(extractor, "dim", FEATURE_DIM)
    cache = FeatureStore(store_folder, extractor.key).dir / "references" / f"{content_hash}.npy"
    if cache.is_file() and not force:
        feats = np.load(cache, allow_pickle=False)
        if feats.shape == (len(files), dim):
            return feats
    log(f"sdexp: {getattr(extractor, 'what', 'Inception')} features for {len(files)} reference images in {ref_folder}")
    feats = np.zeros((len(files), dim), np.float32)
    starts = range(0, len(files), 256)
    extracted = (extract or local_extract(extractor))([files[start:start + 256] for start in starts])
    for start, chunk_feats in zip(starts, extracted, strict=True):
        feats[start:start + len(chunk_feats)] = chunk_feats
    cache.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, feats, allow_pickle=False)
    atomic_write_bytes(cache, buf.getvalue())
    return feats
