"""The Inception feature extractor: the same network and resizing as torch-fidelity and torchmetrics
(antialias=False), loaded from a configurable weights file without downloading; features stored per image."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sdexp.metrics.fid import fid_from_features
from sdexp.metrics.inception import (WEIGHTS_FILE, FeatureStore, InceptionExtractor, default_weights_path,
                                     resolve_weights)
from metrics_helpers import random_inception


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return random_inception(tmp_path_factory)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)   # blocky 64x64
    return [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), smooth]


def chw(images) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def test_features_match_torch_fidelity_and_torchmetrics(weights, batch):
    """Same file, three loaders: sdexp, torch-fidelity's FeatureExtractorInceptionV3, and torchmetrics'
    NoTrainInceptionV3 as FrechetInceptionDistance builds it: antialias=False for resize=tf1 (the
    default), antialias=True (torchmetrics >= 1.8's default) for resize=antialias."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torchmetrics.image.fid import NoTrainInceptionV3

    ours = InceptionExtractor(weights, resize="tf1").features(batch)
    assert ours.shape == (2, 2048) and ours.dtype == np.float32
    with torch.no_grad():
        tf = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))
        fidelity = tf(chw(batch))[0].numpy()
        del tf
        tm = NoTrainInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights),
                                antialias=False)
        metrics = tm(chw(batch)).numpy()
        tm.use_antialias = True
        metrics_aa = tm(chw(batch[1:])).numpy()
    assert np.array_equal(ours, fidelity) and np.array_equal(ours, metrics)
    assert np.abs(ours[0] - ours[1]).max() > 1e-3 * np.abs(ours).max()           # the images differ
    aa = InceptionExtractor(weights, resize="antialias").features(batch[1:])
    assert np.array_equal(aa, metrics_aa) and not np.array_equal(aa, ours[1:])


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert default_weights_path() == tmp_path / "torch" / "hub" / "checkpoints" / WEIGHTS_FILE
    with pytest.raises(FileNotFoundError) as err:
        resolve_weights(None)
    msg = str(err.value)
    assert WEIGHTS_FILE in msg and str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    assert "inception.weights=" in msg and "does not download" in msg
    with pytest.raises(FileNotFoundError, match="inception.weights='/nowhere/w.pth'"):
        InceptionExtractor("/nowhere/w.pth")
    with pytest.raises(ValueError, match="inception.resize='bicubic'.*tf1, antialias"):
        InceptionExtractor(None, resize="bicubic")
    assert not list((tmp_path / "torch").rglob("*.pth"))        # nothing was fetched


def test_extractor_identity_and_warning(weights):
    ex = InceptionExtractor(weights)
    assert not ex.official and "not torch-fidelity's" in ex.warning
    assert ex.key.startswith("inception-") and ex.key.endswith("-tf1") and ex.sha256[:12] in ex.key
    assert ex.name == f"inception-v3-compat:{ex.sha256[:12]}"
    assert ex._net is None                                       # the network loads only when features are needed


def test_feature_store_round_trip(tmp_path):
    fs = FeatureStore(tmp_path, "inception-x-tf1")
    assert fs.load() == {}
    a = np.random.default_rng(1).normal(size=(3, 2048)).astype(np.float32)
    fs.add(["i1", "i2", "i3"], a)
    fs.add(["i4"], a[:1] * 2)
    got = fs.load()
    assert sorted(got) == ["i1", "i2", "i3", "i4"] and len(fs.parts()) == 2
    assert np.array_equal(got["i2"], a[1]) and np.array_equal(got["i4"], a[0] * 2)


REAL = default_weights_path()


@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_file(), reason=f"needs the real {WEIGHTS_FILE} in {REAL.parent}")
def test_real_inception_path(batch):
    """The real weights: official identity, features equal to torch-fidelity's, FID against scipy's sqrtm
    on the full 2048-d covariance."""
    import scipy.linalg
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    ex = InceptionExtractor(None)
    assert ex.official and ex.warning == "" and ex.name.startswith("inception-v3-tf-2015-12-05:")
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(6)] + batch
    ours = ex.features(images)
    with torch.no_grad():
        ref = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                          feature_extractor_weights_path=str(REAL))(chw(images))[0].numpy()
    assert np.array_equal(ours, ref)
    f1, f2 = ours[:4].astype(np.float64), ours[4:].astype(np.float64)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = float(((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert fid_from_features(f1, f2) == pytest.approx(expected, rel=1e-4)
