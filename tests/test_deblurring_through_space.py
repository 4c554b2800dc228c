"""The algorithms through the kernel space (deblurring/through_space.py, dip.py, direct.py) and the deblur
config (deblurring/config.py): the objective decreases, determinism, coarse to fine, early stop, config errors
(tiny model)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from deblur_cases import FAST, ROUTES, TINY_DIP

from deblurring.config import deblur_config, through_space_keywords
from deblurring.dip import deblur_dip
from deblurring.direct import deblur_direct
from deblurring.run import deblur_image
from utils.errors import UserError


@pytest.fixture
def blurry() -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    return torch.rand(1, 3, 34, 40, generator=gen)


@pytest.mark.parametrize("route", ["direct", "dip"])
def test_objective_decreases(tiny_model, blurry, route):
    cfg = {**ROUTES[route], "iterations": 12, "image": {"lr": 0.05}, "kernel": {"lr": 0.05}, "lr_schedule": "constant"}
    if route == "dip":  # the DIPs start away from the blurry image (no warm-up): more, gentler steps
        cfg.update(iterations=16, image={"lr": 0.02}, kernel={"lr": 0.02})
    result = deblur_image(blurry, tiny_model, cfg, "cpu", progress=False)
    losses = [h["loss"] for h in result.history if h["phase"] == "main"]
    assert len(losses) == cfg["iterations"]
    assert np.mean(losses[-3:]) < 0.97 * np.mean(losses[:3]) and losses[-1] < losses[0]
    assert result.sharp.shape == blurry.shape and result.reblurred.shape == blurry.shape
    assert result.code.shape == (1, 64, 1, 1)
    assert 0 <= result.sharp.min() and result.sharp.max() <= 1


def test_dip_parameterisation_same_seed_same_output(tiny_model, blurry):
    a = deblur_image(blurry, tiny_model, TINY_DIP, "cpu", progress=False, seed=1)
    b = deblur_image(blurry, tiny_model, TINY_DIP, "cpu", progress=False, seed=1)
    c = deblur_image(blurry, tiny_model, TINY_DIP, "cpu", progress=False, seed=2)
    # reproducible up to float rounding (multi-threaded CPU reductions may round differently when
    # buffers land at different addresses): far below one 16-bit grey level (1.5e-5)
    assert (a.sharp - b.sharp).abs().max() < 2e-6 and (a.code - b.code).abs().max() < 2e-6
    assert (a.sharp - c.sharp).abs().max() > 1e-3
    phases = [h["phase"] for h in a.history]
    assert (
        phases.count("warmup_image") == 2 and phases.count("warmup_kernel") == 2 and phases.count("main") == 6
    )
    assert all(p.requires_grad for p in tiny_model.parameters())  # the model is handed back unchanged


def test_direct_same_output_and_no_warmup(tiny_model, blurry):
    a = deblur_image(blurry, tiny_model, FAST, "cpu", progress=False, seed=1)
    b = deblur_image(blurry, tiny_model, FAST, "cpu", progress=False, seed=1)
    c = deblur_image(blurry, tiny_model, FAST, "cpu", progress=False, seed=2)
    assert (a.sharp - b.sharp).abs().max() < 2e-6 and (a.code - b.code).abs().max() < 2e-6
    # nothing is random in the direct route: the seed does not matter
    assert (a.sharp - c.sharp).abs().max() < 2e-6 and (a.code - c.code).abs().max() < 2e-6
    assert [h["phase"] for h in a.history] == ["main"] * 4 and a.psf is None
    assert all(p.requires_grad for p in tiny_model.parameters())


@pytest.mark.parametrize("route", ["direct", "dip"])
def test_coarse_to_fine_and_mean_code(tiny_model, blurry, route):
    tiny_model.meta["mean_code"] = torch.full((64,), 0.25)
    cfg = {**FAST, **ROUTES[route]}
    result = deblur_image(blurry, tiny_model, cfg, "cpu", progress=False)
    scales = [h["scale"] for h in result.history if h["phase"] == "main"]
    assert scales == [0.5, 0.5, 1.0, 1.0]
    assert result.sharp.shape == blurry.shape and result.code.shape == (1, 64, 1, 1)
    # a scale whose image would fall below min_size is dropped
    small = torch.rand(1, 3, 20, 20)
    result = deblur_image(small, tiny_model, cfg, "cpu", progress=False)
    assert {h["scale"] for h in result.history} == {1.0} and len(result.history) == 4


def test_direct_starts_at_the_mean_code(tiny_model, blurry):
    tiny_model.meta["mean_code"] = torch.full((64,), 0.25)
    cfg = {**FAST, "iterations": 1, "scales": [1.0], "scale_fractions": [1.0], "kernel": {"lr": 0.0}}
    result = deblur_image(blurry, tiny_model, cfg, "cpu", progress=False)
    assert torch.allclose(result.code, torch.full((1, 64, 1, 1), 0.25))  # lr 0: the start code is the answer


@pytest.mark.parametrize("route", ["direct", "dip"])
def test_early_stop_ends_a_plateau(tiny_model, blurry, route):
    cfg = {
        **FAST,
        **ROUTES[route],
        "iterations": 16,
        "scales": [1.0],
        "scale_fractions": [1.0],
        "image": {"lr": 0.0},
        "kernel": {"lr": 0.0},
        "early_stop": {"enabled": True, "window": 2, "min_improvement": 1e-3, "min_fraction": 0.0},
    }
    if route == "dip":  # no input noise: with lr 0 the DIPs' outputs, and so the objective, stay constant
        cfg["dip"] = {**cfg["dip"], "reg_noise_std": 0.0}
    history = deblur_image(blurry, tiny_model, cfg, "cpu", progress=False).history
    # a constant objective: stops after two windows of the last loss phase (t >= switch_at 0.5: step 8)
    assert len(history) == 12 and history[-1]["stopped"]
    assert not any(h.get("stopped") for h in history[:-1])


def test_too_small_and_bad_config(tiny_model):
    with pytest.raises(UserError, match="too small"):
        deblur_image(torch.rand(1, 3, 1, 1), tiny_model, FAST, "cpu", progress=False)
    with pytest.raises(UserError, match="too small"):
        deblur_image(torch.rand(1, 3, 1, 1), tiny_model, TINY_DIP, "cpu", progress=False)
    with pytest.raises(UserError, match="unknown config key 'image.bogus'"):
        deblur_config({"image": {"bogus": 1}})
    with pytest.raises(UserError, match="scales"):
        deblur_config({"scales": [1.0, 0.5], "scale_fractions": [1, 1]})
    for bad in ("x", [], [0.1, 2.0], True):
        with pytest.raises(UserError, match="'alternating.kernel_threshold' must be null, a number"):
            deblur_config({"alternating": {"kernel_threshold": bad}})
    with pytest.raises(UserError, match="'algorithm' must be one of dip, direct, alternating"):
        deblur_config({"algorithm": "pixels"})
    with pytest.raises(UserError, match="dip.image_channels_down/up/skip"):
        deblur_config({"dip": {"image_channels_down": [4], "image_channels_up": [4, 4], "image_channels_skip": [4]}})
    for route in ("direct", "dip"):
        with pytest.raises(UserError, match="VGG-19"):
            deblur_image(
                torch.rand(1, 3, 32, 32), tiny_model, {**ROUTES[route], "loss": {"early": {"perceptual": 1.0}}}, "cpu"
            )


@pytest.mark.parametrize(
    "cfg, overrides, says",
    [
        ({"image": {"param": "pixels"}}, [], "config key 'image.param' was removed: use 'algorithm: direct'"),
        ({"kernel": {"param": "dip", "lr": 0.1}}, [], "config key 'kernel.param' was removed: use 'algorithm: direct'"),
        ({}, ["image.param=dip"], "'image.param' was removed: use 'algorithm: direct' (free pixels and code) or "
                                  "'algorithm: dip'"),
        ({}, ["image={param: pixels}"], "'image.param' was removed"),
        ({"warmup_iterations": 0}, [], "config key 'warmup_iterations' moved to 'dip.warmup_iterations'"),
        ({"image": {"channels_down": [4]}}, [], "'image.channels_down' moved to 'dip.image_channels_down'"),
        ({}, ["kernel.lr_relative=true"], "'kernel.lr_relative' moved to 'direct.kernel_lr_relative'"),
    ],
)
def test_retired_keys_name_their_replacement(cfg, overrides, says):
    with pytest.raises(UserError) as info:
        deblur_config(cfg, source="old.yml", overrides=overrides)
    message = str(info.value)
    assert says in message and message.startswith("old.yml: ") and "\n" not in message


def test_functions_keep_the_schema_defaults():
    """Each function's keyword defaults are the schema's values (the config and a direct call agree)."""
    cfg = deblur_config({})
    for fn, own in ((deblur_dip, cfg["dip"]), (deblur_direct, cfg["direct"])):
        defaults = {
            name: p.default for name, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY
        }
        expected = {**through_space_keywords(cfg), **own, "loss": None, "early_stop": None}
        for name, value in expected.items():
            got = list(defaults[name]) if isinstance(defaults[name], tuple) else defaults[name]
            assert got == value, (fn.__name__, name)
        assert set(defaults) == set(expected) | {"device", "seed", "progress"}, fn.__name__
    assert cfg["loss"] == deblur_config({"loss": {}})["loss"] and not cfg["early_stop"]["enabled"]


def test_functions_called_directly_match_the_config(tiny_model, blurry):
    """deblur_image only maps the config to keywords: calling the functions gives the same result."""
    for cfg, fn in ((TINY_DIP, deblur_dip), (FAST, deblur_direct)):
        full = deblur_config(cfg)
        via_config = deblur_image(blurry, tiny_model, cfg, "cpu", progress=False, seed=3)
        direct_call = fn(
            blurry, tiny_model, **through_space_keywords(full), **full[full["algorithm"]], seed=3, progress=False
        )
        assert (via_config.sharp - direct_call.sharp).abs().max() < 2e-6, fn.__name__
        assert (via_config.code - direct_call.code).abs().max() < 2e-6, fn.__name__
    # every keyword has a default: the shortest call works (here with a few steps)
    result = deblur_direct(blurry[:, :1], tiny_model, iterations=2, progress=False)
    assert result.sharp.shape == (1, 1, 34, 40) and len(result.history) == 2
