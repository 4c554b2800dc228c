"""deblur.py: outputs keep the input's kind, extras and reports, folder mode, shards and workers, one-line
errors (tiny model)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import yaml
from deblur_cases import FAST, TINY_DIP

from deblur import main
from utils.errors import run_cli

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
