"""The learned prior over kernel codes (models/code_prior.py), its fit (scripts/fit_code_prior.py),
its use by transfer --sample, and the prior figures (utils/kernel_stats.py, evaluate.py --prior)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import transferring
from data.kernels import linear_kernel, trajectory_kernel, trajectory_psfs
from models import KernelSpace
from models.code_prior import META_KEY, GaussianMixturePrior, fit_gaussian_mixture
from scripts import evaluate, fit_code_prior
from utils.errors import UserError, run_cli
from utils.kernel_stats import best_matches, connected_share, mean_pairwise_similarity, similarity_matrix
from utils.metrics import kernel_similarity

PSF_MODEL = {"generator": "psf", "kernel_dim": 16, "PSF": {"size": 15, "width": 32, "depth": 1, "refine_steps": 5}}
SMALL_RECIPE = ["kernels=48", "kernel_size=11", "components=3", "iterations=10", "batch=16"]


def two_clusters(n: int = 600, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[5.0, 0.0, -3.0], [-4.0, 2.0, 1.0]], dtype=torch.float64)
    labels = (torch.rand(n, generator=g) < 0.3).long()
    return centres[labels] + 0.5 * torch.randn(n, 3, generator=g, dtype=torch.float64), centres


# -- trajectory kernels ---------------------------------------------------------------------------
def test_trajectory_kernels_dwell_where_the_camera_slows_down():
    """Equal time per step: the brightest pixel of a trajectory kernel carries several times the
    mean of its support, where a uniform-speed line is flat along its length."""
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(40):
        k = trajectory_kernel(rng, 41, 0.8)
        support = k[k > 0.05 * k.max()]
        ratios.append(k.max() / support.mean())
    line = linear_kernel(np.random.default_rng(0), 41, 0.8)
    line_ratio = line.max() / line[line > 0.05 * line.max()].mean()
    assert np.median(ratios) > 1.5 * line_ratio


def test_trajectory_psfs_reach_101_px_centred_in_their_frame():
    psfs = trajectory_psfs(6, 101, 105, (0.9, 1.0), seed=3)
    assert psfs.shape == (6, 105, 105)
    np.testing.assert_allclose(psfs.sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert psfs[:, :2].sum() == 0 and psfs[:, :, -2:].sum() == 0  # the 2-px margin of the frame is empty
    for k in psfs:  # each reaches ≥ 0.9 · 0.6 of the 98 px it may span (trajectory_kernel's scaling)
        rows, cols = np.nonzero(k.sum(axis=1))[0], np.nonzero(k.sum(axis=0))[0]
        assert max(np.ptp(rows), np.ptp(cols)) >= 52
    np.testing.assert_array_equal(psfs, trajectory_psfs(6, 101, 105, (0.9, 1.0), seed=3))


# -- kernel statistics ----------------------------------------------------------------------------
def test_connected_share_counts_the_largest_piece():
    stroke = np.zeros((15, 15))
    stroke[7, 2:12] = 1.0
    assert connected_share(stroke) == pytest.approx(1.0)
    dots = np.zeros((15, 15))
    dots[2, 2] = dots[12, 12] = 1.0
    assert connected_share(dots) == pytest.approx(0.5)
    dots[7, 7] = 2.0
    assert connected_share(dots) == pytest.approx(0.5)
    assert connected_share(np.zeros((5, 5))) == 0.0


def test_similarity_matrix_is_the_pairwise_kernel_similarity():
    rng = np.random.default_rng(1)
    a = trajectory_psfs(4, 11, 15, (0.3, 1.0), seed=1)
    b = np.stack([trajectory_kernel(rng, 9, 0.7) for _ in range(3)])
    expected = np.array([[kernel_similarity(x, y) for y in b] for x in a])
    np.testing.assert_allclose(similarity_matrix(a, b), expected, atol=1e-9)
    assert mean_pairwise_similarity(np.stack([a[0]] * 3)) == pytest.approx(1.0)
    assert mean_pairwise_similarity(a) < 0.99
    np.testing.assert_allclose(best_matches(a, [a[2][2:-2, 2:-2], b[0]]), [1.0, expected[:, 0].max()], atol=1e-6)


# -- the mixture ----------------------------------------------------------------------------------
def test_gaussian_mixture_recovers_two_clusters():
    codes, centres = two_clusters()
    prior = fit_gaussian_mixture(codes, 2, iterations=50, seed=0)
    order = prior.means[:, 0].argsort(descending=True)
    np.testing.assert_allclose(prior.means[order], centres, atol=0.15)
    np.testing.assert_allclose(prior.weights[order], [0.7, 0.3], atol=0.06)
    np.testing.assert_allclose(prior.variances, 0.25, atol=0.06)
    assert prior.log_prob(centres).min() > prior.log_prob(torch.zeros(1, 3, dtype=torch.float64)).max() + 10
    samples = prior.sample(2000, torch.Generator().manual_seed(0)).double()
    near_first = ((samples - centres[0]).norm(dim=1) < (samples - centres[1]).norm(dim=1)).double().mean()
    assert abs(float(near_first) - 0.7) < 0.05
    with pytest.raises(ValueError, match="at least as many codes"):
        fit_gaussian_mixture(codes[:1], 2)


def test_mixture_round_trips_through_meta_and_refuses_bad_shapes():
    codes, _ = two_clusters()
    prior = fit_gaussian_mixture(codes, 2, iterations=5)
    again = GaussianMixturePrior.from_meta(prior.to_meta(), kernel_dim=3)
    np.testing.assert_allclose(again.means, prior.means, rtol=1e-6)
    with pytest.raises(ValueError, match="3-dimensional codes"):
        GaussianMixturePrior.from_meta(prior.to_meta(), kernel_dim=4)
    with pytest.raises(ValueError, match="weights"):
        GaussianMixturePrior.from_meta({"means": prior.means})
    with pytest.raises(ValueError, match="weights \\(K,\\)"):
        GaussianMixturePrior.from_meta({**prior.to_meta(), "variances": torch.ones(3, 3)})


def test_a_sampled_field_changes_smoothly_and_each_cell_is_a_prior_draw():
    codes, _ = two_clusters()
    prior = fit_gaussian_mixture(codes, 2, iterations=20)
    fields = prior.sample_field(400, (4, 6), torch.Generator().manual_seed(1)).double()
    assert fields.shape == (400, 3, 4, 6)
    neighbours = (fields[..., 1:] - fields[..., :-1]).norm(dim=1).mean()
    far = (fields[..., -1:] - fields[..., :1]).norm(dim=1).mean()
    assert neighbours < far
    cells = fields.permute(0, 2, 3, 1).reshape(-1, 3)  # every cell, pooled: the prior's own spread
    np.testing.assert_allclose(cells.mean(0), prior.sample(20000).double().mean(0), atol=0.25)
    flat = prior.sample_field(3, (2, 3), torch.Generator().manual_seed(1), turn=0.0)
    assert torch.allclose(flat, flat[..., :1, :1].expand_as(flat))


# -- fitting and using it -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_with_prior(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("prior")
    torch.manual_seed(0)
    KernelSpace.from_config(PSF_MODEL).save(str(folder / "plain.pth"))
    args = ["--model", str(folder / "plain.pth"), "--output", str(folder / "prior.pth")]
    assert run_cli(fit_code_prior.main, args + [a for item in SMALL_RECIPE for a in ("--set", item)]) == 0
    return str(folder / "prior.pth")


def test_fit_writes_the_prior_and_keeps_the_weights(model_with_prior):
    fitted = KernelSpace.load(model_with_prior)
    plain = KernelSpace.load(model_with_prior.replace("prior.pth", "plain.pth"))
    for name, tensor in plain.state_dict().items():
        assert torch.equal(tensor, fitted.state_dict()[name])
    prior = transferring.blur.code_prior(fitted)
    assert prior is not None and prior.means.shape == (3, 16)
    assert fitted.meta["code_prior_recipe"]["kernels"] == 48
    assert transferring.blur.code_prior(plain) is None


def test_sample_codes_draw_from_the_learned_prior(model_with_prior):
    model = KernelSpace.load(model_with_prior)  # not a VAE: the learned prior is what it samples
    prior = transferring.blur.code_prior(model)
    codes = transferring.sample_codes(model, (2, 3), 64, seed=4)
    assert codes.shape == (64, 16, 2, 3)
    assert torch.equal(codes, transferring.sample_codes(model, (2, 3), 64, seed=4))
    best = prior.log_prob(codes[:, :, 0, 0]).mean()
    assert best > prior.log_prob(torch.randn(64, 16, dtype=torch.float64)).mean()
    uniform = transferring.sample_codes(model, (2, 3), 2, seed=4, uniform=True)
    assert torch.equal(uniform, uniform[..., :1, :1].expand_as(uniform))
    with pytest.raises(UserError, match="neither"):
        transferring.sample_codes(KernelSpace.from_config(PSF_MODEL), (1, 1), 1)
    model.meta[META_KEY] = {"weights": torch.ones(2)}
    with pytest.raises(UserError, match="code prior is unusable"):
        transferring.sample_codes(model, (1, 1), 1)


def test_evaluate_prior_writes_its_figures(model_with_prior, tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    import cv2

    for i, k in enumerate(trajectory_psfs(2, 9, 11, (0.5, 1.0), seed=9)):
        cv2.imwrite(str(refs / f"kernel{i + 1}.png"), np.round(k / k.max() * 255).astype(np.uint8))
    args = ["--model", model_with_prior, "--prior", "12", "--out", str(tmp_path), "--name", "t",
            "--reference-kernels", str(refs)]
    assert run_cli(evaluate.main, args) == 0
    result = json.loads((tmp_path / "prior_t.json").read_text())
    figures = result["priors"]["learned code prior"]
    assert 0.0 <= figures["connected"] <= 1.0 and 0.0 < figures["pairwise"] <= 1.0
    assert len(figures["match_reference_each"]) == 2 and "N(0, I)" not in result["priors"]
    assert (tmp_path / "prior_t.png").stat().st_size > 0 and "pairwise" in (tmp_path / "prior_t.md").read_text()
    assert run_cli(evaluate.main, args[:2] + ["--prior", "1", "--out", str(tmp_path), "--name", "u"]) == 2


def test_fit_refuses_a_bad_recipe(model_with_prior, tmp_path):
    args = ["--model", model_with_prior, "--output", str(tmp_path / "x.pth")]
    assert run_cli(fit_code_prior.main, args + ["--set", "kernel_size=17"]) == 2  # larger than PSF.size 15
    assert run_cli(fit_code_prior.main, args + ["--set", "kernels=2", "--set", "components=3"]) == 2
    assert run_cli(fit_code_prior.main, args + ["--set", "colour=red"]) == 2
    assert not (tmp_path / "x.pth").exists()


def test_augment_from_the_prior_blurs_each_target_with_its_seeded_code(model_with_prior, tmp_path):
    import yaml

    from data.image_io import read_image, write_image
    from data.paired import PairedFolderDataset
    from scripts import augment_dataset

    rng = np.random.default_rng(0)
    for i in range(2):
        write_image(tmp_path / "targets" / f"t{i}.png", rng.random((40, 48, 3)).astype(np.float32))
    args = ["--from-prior", "--targets", str(tmp_path / "targets"), "--out", str(tmp_path / "aug"),
            "--model", model_with_prior, "--per-target", "2", "--device", "cpu", "--seed", "3"]
    assert run_cli(augment_dataset.main, args) == 0
    info = yaml.safe_load((tmp_path / "aug" / "augment_info.yml").read_text())
    dataset = PairedFolderDataset(tmp_path / "aug", crop_size=None, train=False)
    model = KernelSpace.load(model_with_prior)
    seeds = [r["prior_seed"] for r in info["samples"]]
    assert len(dataset) == 4 and len(set(seeds)) == 4
    for i, record in enumerate(info["samples"]):
        target = torch.from_numpy(read_image(record["target"]).rgb.transpose(2, 0, 1).copy())[None]
        code = transferring.sample_codes(model, (1, 1), 1, record["prior_seed"])
        expected = transferring.apply_code(model, target, code).clamp(0, 1)[0]
        np.testing.assert_allclose(dataset[i]["blur"].numpy(), expected.numpy(), atol=0.5 / 255 + 1e-5)


def test_fit_keeps_only_the_codes_that_decode_to_one_streak(model_with_prior):
    plain = KernelSpace.load(model_with_prior.replace("prior.pth", "plain.pth"))
    psfs = torch.from_numpy(trajectory_psfs(48, 11, 15, (0.3, 1.0), seed=0))  # the fixture's recipe
    codes, represented = fit_code_prior.encode_kernels(plain, psfs, batch=16, progress=False)
    assert codes.shape == (48, 16) and represented.dtype == torch.bool
    with torch.no_grad():
        decoded = plain.psf_of_code(codes[:, :, None, None])[:, 0, 0]
    assert represented.tolist() == [connected_share(k) >= 0.75 for k in decoded]
    recipe = KernelSpace.load(model_with_prior).meta["code_prior_recipe"]
    assert recipe["represented_only"] and recipe["fitted_kernels"] == int(represented.sum())


def test_codes_that_do_not_decode_to_one_streak_are_left_out_of_the_fit(model_with_prior, monkeypatch):
    codes, centres = two_clusters(n=200)
    represented = (codes - centres[0]).norm(dim=1) < (codes - centres[1]).norm(dim=1)  # the other: specks
    codes = torch.cat([codes, torch.zeros(200, 13, dtype=torch.float64)], dim=1).float()
    monkeypatch.setattr(fit_code_prior, "encode_kernels", lambda *a, **k: (codes, represented))
    model = KernelSpace.load(model_with_prior)
    recipe = {"kernels": 200, "kernel_size": 11, "intensity": [0.3, 1.0], "components": 2, "iterations": 10,
              "variance_floor": 1e-3, "seed": 0, "represented_only": True, "batch": 16}
    prior, fitted = fit_code_prior.fit_code_prior(model, recipe, progress=False)
    assert fitted == int(represented.sum()) and 0 < fitted < 200
    kept, left_out = codes[represented].double().mean(0), codes[~represented].double().mean(0)
    assert (prior.means - kept).norm(dim=1).max() < (left_out - kept).norm() / 4
    everything, fitted = fit_code_prior.fit_code_prior(model, {**recipe, "represented_only": False}, progress=False)
    assert fitted == 200
    with pytest.raises(UserError, match="represented_only"):
        fit_code_prior.fit_code_prior(model, {**recipe, "components": 150}, progress=False)
