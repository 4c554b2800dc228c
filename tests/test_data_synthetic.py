"""Synthetic blur pairs: valid convolution, reproducibility, DataLoader workers, factory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data import build_dataset
from data.kernels import KernelSampler
from data.sharp_sources import DeadLeavesSource, FolderSource
from data.synthetic import NoiseModel, SyntheticBlurDataset, blur_valid
from utils.errors import UserError

TINY = {"mode": "synthetic", "HQ_size": 24, "synthetic": {"kernel_size": 7, "num_samples": 16}}


def test_blur_valid_is_true_convolution_without_border():
    rng = np.random.default_rng(0)
    image = rng.random((12, 10, 3), dtype=np.float32)
    kernel = rng.random((5, 5)).astype(np.float32)
    out = blur_valid(image, kernel)
    assert out.shape == (8, 6, 3)
    expected = np.zeros_like(out)
    for y in range(8):
        for x in range(6):
            patch = image[y:y + 5, x:x + 5]  # convolution: flipped kernel against the patch
            expected[y, x] = np.einsum("ijc,ij->c", patch, kernel[::-1, ::-1])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_delta_kernel_without_noise_returns_the_sharp_crop():
    class Delta(KernelSampler):
        def sample(self, rng):
            k = np.zeros((5, 5), np.float32)
            k[2, 2] = 1
            return k

    ds = SyntheticBlurDataset(DeadLeavesSource(), Delta(size=5), crop_size=16,
                              noise=NoiseModel(sigma=(0.0, 0.0)), num_samples=2)
    s = ds[0]
    torch.testing.assert_close(s["blur"], s["sharp"])


def test_same_seed_same_samples_and_different_indices_differ():
    a = build_dataset(TINY, seed=5, phase="train")
    b = build_dataset(TINY, seed=5, phase="train")
    c = build_dataset(TINY, seed=6, phase="train")
    v = build_dataset(TINY, seed=5, phase="val")
    for key in ("sharp", "blur", "kernel"):
        assert torch.equal(a[3][key], b[3][key])
    assert not torch.equal(a[3]["blur"], a[4]["blur"])
    assert not torch.equal(a[3]["blur"], c[3]["blur"])
    assert not torch.equal(a[3]["blur"], v[3]["blur"])


def test_sample_shapes_ranges_and_noise():
    ds = build_dataset(dict(TINY, synthetic={**TINY["synthetic"], "noise_sigma": [0.05, 0.05],
                                              "quantize": False}), seed=0, phase="train")
    s = ds[0]
    assert s["sharp"].shape == (3, 24, 24) and s["blur"].shape == (3, 24, 24)
    assert s["kernel"].shape == (1, 7, 7)
    assert s["sharp"].dtype == torch.float32
    for key in ("sharp", "blur"):
        assert 0.0 <= float(s[key].min()) and float(s[key].max()) <= 1.0
    assert float(s["kernel"].sum()) == pytest.approx(1.0, abs=1e-5)
    quantised = build_dataset(TINY, seed=0, phase="train")[0]["blur"] * 255
    torch.testing.assert_close(quantised, torch.round(quantised), atol=1e-4, rtol=0)


def test_dataloader_with_two_workers_matches_direct_indexing():
    ds = build_dataset(TINY, seed=1, phase="train")
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    assert len(batches) == 4
    assert batches[1]["blur"].shape == (4, 3, 24, 24)
    assert torch.equal(batches[1]["blur"][2], ds[6]["blur"])
    assert torch.equal(batches[3]["sharp"][0], ds[12]["sharp"])


def test_folder_source_crops(tmp_path):
    from data.image_io import write_image

    write_image(tmp_path / "a.png", np.random.default_rng(0).random((20, 30, 3)))
    write_image(tmp_path / "sub" / "b.png", np.random.default_rng(1).random((8, 8, 3)))
    src = FolderSource(tmp_path)
    assert len(src) == 2
    for seed in range(6):
        crop = src.sample(np.random.default_rng(seed), 12, 14)
        assert crop.shape == (12, 14, 3) and crop.dtype == np.float32
    opt = dict(TINY, synthetic={**TINY["synthetic"], "source": "folder", "sharp_dir": str(tmp_path)})
    assert build_dataset(opt, seed=0)[0]["sharp"].shape == (3, 24, 24)
    with pytest.raises(UserError, match="no images"):
        FolderSource(_empty(tmp_path))


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


@pytest.mark.parametrize(
    "opt, match",
    [
        ({"mode": "nope"}, "mode"),
        ({"synthetic": {"kernel_size": 8}}, "odd"),
        ({"synthetic": {"noise_sigma": [0.02, 0.01]}}, "noise_sigma"),
        ({"synthetic": {"kernel_kinds": ["wobble"]}}, "wobble"),
        ({"synthetic": {"source": "folder"}}, "sharp_dir"),
        ({"synthetic": {"colour": 1}}, "unknown config key 'synthetic.colour'"),
    ],
)
def test_bad_synthetic_options_are_user_errors(opt, match):
    with pytest.raises(UserError, match=match):
        build_dataset({**TINY, **opt}, seed=0)


def test_deadleaves_is_reproducible_and_textured():
    src = DeadLeavesSource()
    a = src.sample(np.random.default_rng(3), 40, 48)
    b = src.sample(np.random.default_rng(3), 40, 48)
    assert a.shape == (40, 48, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert a.std() > 0.05  # not a flat image
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 200  # many distinct colours (leaves, shading, texture)


def test_scikit_image_photos_are_refused_as_a_training_source():
    import skimage

    photos = Path(skimage.__file__).parent / "data"
    with pytest.raises(UserError, match="reserved for evaluation"):
        FolderSource(photos)
