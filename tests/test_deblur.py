"""deblur.py and the algorithms through the kernel space (deblurring.dip.deblur_dip,
deblurring.direct.deblur_direct): the objective decreases, outputs keep the input's kind, determinism,
coarse to fine, early stop, config and CLI errors (tiny model)."""

from __future__ import annotations

import inspect
import json

import cv2
import numpy as np
import pytest
import torch
import yaml

from deblur import main
from deblurring.config import deblur_config, through_space_keywords
from deblurring.dip import deblur_dip
from deblurring.direct import deblur_direct
from deblurring.run import deblur_image
from utils.errors import UserError, run_cli

# few steps, small networks: every F call runs on a 128×128 pad of the tiny model
TINY_DIP_NETS = {
    "warmup_iterations": 2,
    "reg_noise_std": 0.01,
    "image_in_channels": 4,
    "image_channels_down": [4, 4],
    "image_channels_up": [4, 4],
    "image_channels_skip": [2, 2],
    "kernel_in_channels": 4,
    "kernel_width": 4,
    "kernel_n_down": 2,
    "kernel_n_blocks": 1,
}
TINY_DIP = {
    "algorithm": "dip",
    "iterations": 6,
    "image": {"lr": 0.01},
    "kernel": {"lr": 0.01},
    "dip": TINY_DIP_NETS,
}
FAST = {
    "algorithm": "direct",
    "iterations": 4,
    "scales": [0.5, 1.0],
    "scale_fractions": [0.5, 0.5],
    "image": {"lr": 0.02},
    "kernel": {"lr": 0.02, "rescale_init": "extract"},
}
# the same settings for either algorithm through the kernel space (dip: with tiny networks, no warm-up)
ROUTES = {
    "direct": {"algorithm": "direct"},
    "dip": {"algorithm": "dip", "dip": {**TINY_DIP_NETS, "warmup_iterations": 0}},
}


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


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def cli_setup(tmp_path, tiny_model):
    model = tmp_path / "tiny.pth"
    tiny_model.save(str(model))
    config = tmp_path / "tiny.yml"
    config.write_text(yaml.safe_dump({**FAST, "iterations": 2, "scales": [1.0], "scale_fractions": [1.0]}))
    return model, config


def _run(model, config, *args) -> int:
    return run_cli(
        main, ["--model", str(model), "--config", str(config), "--device", "cpu", "--quiet", *args]
    )


@pytest.mark.parametrize(
    "name, array",
    [
        ("gray.png", np.random.default_rng(0).integers(0, 256, (30, 26), dtype=np.uint8)),
        ("rgb.png", np.random.default_rng(1).integers(0, 256, (30, 26, 3), dtype=np.uint8)),
        ("rgba.png", np.random.default_rng(2).integers(0, 256, (30, 26, 4), dtype=np.uint8)),
        ("deep.png", np.random.default_rng(3).integers(0, 65536, (30, 26, 3), dtype=np.uint16)),
    ],
)
def test_cli_output_keeps_the_input_kind(tmp_path, cli_setup, name, array):
    model, config = cli_setup
    src, dst = tmp_path / name, tmp_path / f"out_{name}"
    cv2.imwrite(str(src), array)
    assert _run(model, config, "--input", str(src), "--output", str(dst)) == 0
    out = cv2.imread(str(dst), cv2.IMREAD_UNCHANGED)
    assert out.shape == array.shape and out.dtype == array.dtype
    if array.ndim == 3 and array.shape[2] == 4:
        assert np.array_equal(out[..., 3], array[..., 3])  # alpha passed through


def test_cli_extras_and_report(tmp_path, cli_setup):
    model, config = cli_setup
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8))
    args = [
        "--input",
        str(src),
        "--output",
        str(tmp_path / "out.png"),
        "--save-kernel",
        str(tmp_path / "k.pt"),
        "--save-reblur",
        str(tmp_path / "re.png"),
        "--save-psf",
        str(tmp_path / "psf.png"),
        "--report",
        str(tmp_path / "r.json"),
        "--iters",
        "1",
    ]
    assert _run(model, config, *args) == 0
    saved = torch.load(tmp_path / "k.pt", weights_only=True)
    assert saved["code"].shape == (1, 64, 1, 1)
    assert cv2.imread(str(tmp_path / "re.png")).shape == (40, 48, 3)
    assert cv2.imread(str(tmp_path / "psf.png")) is not None
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["images"][0]["status"] == "ok" and report["images"][0]["steps"] == 1


def test_cli_folder_mode(tmp_path, cli_setup):
    model, config = cli_setup
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), np.full((24, 24, 3), 100, np.uint8))
    (src / "broken.png").write_bytes(b"not a png")
    (src / "notes.txt").write_text("x")
    report = tmp_path / "r.json"
    assert (
        _run(model, config, "--input-dir", str(src), "--output-dir", str(out), "--report", str(report)) == 1
    )
    status = {r["input"].split("/")[-1]: r["status"] for r in json.loads(report.read_text())["images"]}
    assert status == {"a.png": "ok", "broken.png": "failed", "notes.txt": "skipped"}
    assert (out / "a.png").is_file()
    (src / "broken.png").unlink()
    before = (out / "a.png").stat().st_mtime_ns
    assert _run(model, config, "--input-dir", str(src), "--output-dir", str(out), "--skip-existing") == 0
    assert (out / "a.png").stat().st_mtime_ns == before


def test_cli_errors_exit_2(tmp_path, cli_setup, capsys):
    model, config = cli_setup
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.zeros((24, 24, 3), np.uint8))
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((1, 1, 3), np.uint8))
    bad_cfg = tmp_path / "bad.yml"
    bad_cfg.write_text("scales: [1.0]\nunknown_key: 3\n")
    cases = [
        ["--input", str(tmp_path / "missing.png")],
        ["--input", str(tiny)],
        ["--input", str(good), "--set", "image.param=magic"],
        ["--input", str(good), "--set", "algorithm=magic"],
        ["--input", str(good), "--output", str(tmp_path / "out.xyz")],
        ["--input-dir", str(tmp_path)],
        ["--input", str(good), "--iters", "0"],
    ]
    for args in cases:
        assert _run(model, config, *args) == 2, args
    assert run_cli(main, ["--input", str(good), "--config", str(bad_cfg)]) == 2
    assert (
        run_cli(main, ["--input", str(good), "--model", str(tmp_path / "none.pth"), "--config", str(config)])
        == 2
    )
    assert run_cli(main, ["--input", str(good), "--model", str(bad_cfg), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "too small" in err and "unknown config key 'unknown_key'" in err and "none.pth" in err
    assert "'image.param' was removed" in err and "'algorithm' must be one of" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("old, route", [("pixels", "direct"), ("dip", "dip")])
def test_cli_old_param_key_is_a_one_line_error(tmp_path, cli_setup, capsys, old, route):
    """A preset of the layout before the split (image.param) fails with one line naming the key and
    the algorithm to choose instead."""
    model, _ = cli_setup
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.zeros((24, 24, 3), np.uint8))
    old_cfg = tmp_path / "old.yml"
    old_cfg.write_text(yaml.safe_dump({"algorithm": "dip", "iterations": 2, "image": {"param": old, "lr": 0.1}}))
    assert _run(model, old_cfg, "--input", str(good)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "image.param" in err and f"'algorithm: {route}'" in err and str(old_cfg) in err


def test_cli_runs_every_route(tmp_path, cli_setup, capsys):
    model, _ = cli_setup
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), np.random.default_rng(0).integers(0, 256, (24, 28), dtype=np.uint8))
    for route, cfg in (("dip", TINY_DIP), ("direct", FAST)):
        config = tmp_path / f"{route}.yml"
        config.write_text(yaml.safe_dump(cfg))
        report = tmp_path / f"{route}.json"
        assert _run(model, config, "--input", str(src), "--output", str(tmp_path / f"{route}.png"),
                    "--iters", "3", "--report", str(report)) == 0  # fmt: skip
        entry = json.loads(report.read_text())["images"][0]
        assert entry["algorithm"] == route and entry["steps"] == 3 and entry["status"] == "ok"
        assert cv2.imread(str(tmp_path / f"{route}.png"), cv2.IMREAD_UNCHANGED).shape == (24, 28)


@pytest.fixture
def folder_of_three(tmp_path, tiny_model):
    """Three small blurry photos, the tiny model and an alternating config with two candidates."""
    from data.image_io import write_image

    model = tmp_path / "tiny.pth"
    tiny_model.save(str(model))
    config = tmp_path / "alt.yml"
    config.write_text(yaml.safe_dump({"algorithm": "alternating", "alternating": {
        "psf_size": 9, "iterations": 2, "candidates": [[5, 4.0e-3], [7, 4.0e-3]]}}))
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "c.png"):
        image = cv2.GaussianBlur(rng.random((48, 56, 3)).astype(np.float32), (0, 0), 2.0)
        write_image(src / name, cv2.blur(image, (5, 1)))
    return model, config, src


def _outputs(folder) -> dict[str, np.ndarray]:
    return {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.iterdir())}


def test_cli_two_shards_write_exactly_one_runs_outputs(tmp_path, folder_of_three):
    model, config, src = folder_of_three
    assert _run(model, config, "--input-dir", str(src), "--output-dir", str(tmp_path / "all")) == 0
    for k in (1, 2):
        assert _run(model, config, "--input-dir", str(src), "--output-dir", str(tmp_path / f"s{k}"),
                    "--shard", f"{k}/2") == 0
    one, two = _outputs(tmp_path / "s1"), _outputs(tmp_path / "s2")
    assert set(one) == {"a.png", "c.png"} and set(two) == {"b.png"}  # every other image, disjoint
    whole = _outputs(tmp_path / "all")
    assert set(whole) == set(one) | set(two)
    assert all(np.array_equal(whole[name], image) for name, image in {**one, **two}.items())


@pytest.mark.slow
def test_cli_workers_write_the_same_outputs(tmp_path, folder_of_three):
    model, config, src = folder_of_three
    report = tmp_path / "r.json"
    assert _run(model, config, "--input-dir", str(src), "--output-dir", str(tmp_path / "w1"), "--threads", "1") == 0
    assert _run(model, config, "--input-dir", str(src), "--output-dir", str(tmp_path / "w2"), "--workers", "2",
                "--report", str(report)) == 0
    serial, pooled = _outputs(tmp_path / "w1"), _outputs(tmp_path / "w2")
    assert set(serial) == set(pooled) == {"a.png", "b.png", "c.png"}
    assert all(np.array_equal(serial[name], pooled[name]) for name in serial)
    entries = json.loads(report.read_text())["images"]
    assert [e["input"].split("/")[-1] for e in entries] == ["a.png", "b.png", "c.png"]  # in order


@pytest.mark.parametrize("flags, says", [
    (["--shard", "3/2"], "--shard K/N needs 1 <= K <= N"),
    (["--shard", "x"], "--shard must be K/N"),
    (["--workers", "0"], "--workers must be >= 1"),
    (["--threads", "0"], "--threads must be >= 1"),
])
def test_cli_bad_batch_flags_exit_2(tmp_path, folder_of_three, capsys, flags, says):
    model, config, src = folder_of_three
    assert _run(model, config, "--input-dir", str(src), "--output-dir", str(tmp_path / "o"), *flags) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1
