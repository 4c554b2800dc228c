"""Blur transfer, tiling, novel-blur sampling, the PSF picture and transfer.py's command line."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import transfer
import transferring
import transferring.tiling as tiling
from data.image_io import read_image, to_numpy, write_image
from models import KernelSpace, code_grid_size, resample_code
from models.psf_probe import probe_psf, render_psfs
from utils.errors import UserError, run_cli


def smooth_image(height: int, width: int, seed: int) -> torch.Tensor:
    """A (1, 3, H, W) image in [0, 1] with structure at several scales."""
    g = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.rand(1, 3, height // 16, width // 16, generator=g), size=(height, width),
                           mode="bilinear", align_corners=False)
    return (0.7 * coarse + 0.3 * torch.rand(1, 3, height, width, generator=g)).clamp(0, 1)


def box_blur(image: torch.Tensor, k: int = 7) -> torch.Tensor:
    return F.avg_pool2d(F.pad(image, (k // 2,) * 4, mode="replicate"), k, 1)


@pytest.fixture
def tiny_vae(tiny_config):
    torch.manual_seed(1)
    return KernelSpace.from_config({**tiny_config, "use_vae": True}).eval()


# -- tiles ----------------------------------------------------------------------------------------
def test_tile_starts_cover_length_with_aligned_tiles():
    for length, tile, overlap in [(384, 256, 128), (640, 512, 128), (3840, 512, 128), (1280, 512, 64), (256, 512, 0)]:
        starts = tiling.tile_starts(length, tile, overlap)
        size = min(tile, length)
        assert all(s % 128 == 0 for s in starts)
        assert starts[0] == 0 and starts[-1] + size == length
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        assert all(0 < g <= size - overlap for g in gaps)  # neighbours overlap by at least `overlap`


@pytest.mark.parametrize("blend", ["cosine", "linear"])
def test_ramps_of_neighbouring_tiles_sum_to_one(blend):
    down = tiling.ramp(256, 0, 128, blend)
    up = tiling.ramp(256, 128, 0, blend)
    assert torch.allclose(down[128:] + up[:128], torch.ones(128))
    assert down[:128].eq(1).all() and (down > 0).all()


def test_bad_tiling_is_a_user_error():
    for tile, overlap in [(300, 128), (128, 0), (512, 300), (512, -1)]:
        with pytest.raises(UserError):
            tiling.check_tiling(tile, overlap)


# -- transfer -------------------------------------------------------------------------------------
def test_transfer_to_targets_of_other_sizes(tiny_model):
    sharp = smooth_image(256, 256, 0)
    blurry = box_blur(sharp)
    targets = [smooth_image(200, 300, 1), smooth_image(384, 512, 2)]
    out = transferring.transfer_blur(to_numpy(sharp), to_numpy(blurry), [to_numpy(t) for t in targets], tiny_model,
                                 "cpu", tile=None)
    code = tiny_model.extract_code(sharp, blurry)
    assert code.shape[-2:] == (2, 2)
    for target, result in zip(targets, out):
        assert result.shape == (*target.shape[-2:], 3) and result.dtype == np.float32
        assert result.min() >= 0.0 and result.max() <= 1.0
        with torch.no_grad():
            expected = tiny_model.apply(target, resample_code(code, code_grid_size(*target.shape[-2:])))
        np.testing.assert_allclose(result, to_numpy(expected.clamp(0, 1)), atol=1e-5)


def test_tiled_and_untiled_outputs_agree(tiny_model):
    target = smooth_image(384, 512, 3)
    code = torch.randn(1, tiny_model.kernel_dim, 3, 4, generator=torch.Generator().manual_seed(0))  # varies per cell
    whole = tiling.apply_code(tiny_model, target, code, tile=None)
    for blend in ("cosine", "linear"):
        tiled = tiling.apply_code(tiny_model, target, code, tile=256, overlap=128, blend=blend)
        assert tiled.shape == whole.shape
        assert (tiled - whole).abs().max().item() <= 1 / 255
    # without overlap the seams show: the comparison above can fail
    seams = tiling.apply_code(tiny_model, target, code, tile=256, overlap=0)
    assert (seams - whole).abs().max().item() > 1 / 255


class CellOffsetModel(torch.nn.Module):
    """Stands in for F: adds to each 128×128 cell the first 3 channels of its code cell."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def apply(self, sharp: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        h, w = sharp.shape[-2:]
        code = resample_code(code, code_grid_size(h, w))
        offset = code[:, :3].repeat_interleave(128, dim=2).repeat_interleave(128, dim=3)
        return sharp + offset[..., :h, :w]


def test_each_tile_gets_the_code_cells_it_covers():
    target = smooth_image(300, 650, 9)  # padded to 384×768: 3×6 cells, tiles of 256 at unaligned ends
    code = torch.randn(1, 3, 3, 6, generator=torch.Generator().manual_seed(1))
    model = CellOffsetModel()
    whole = tiling.apply_code(model, target, code, tile=None)
    tiled = tiling.apply_code(model, target, code, tile=256, overlap=128)
    assert torch.allclose(tiled, whole, atol=1e-6)
    shifted = tiling.apply_code(model, target, code.roll(1, dims=3), tile=256, overlap=128)
    assert not torch.allclose(shifted, whole, atol=1e-2)


def test_tiled_transfer_with_unaligned_size_and_tiled_encoding(tiny_model):
    sharp = smooth_image(300, 420, 4)
    blurry = box_blur(sharp)
    target = smooth_image(330, 500, 5)
    whole = transferring.transfer_blur(sharp, blurry, [target], tiny_model, "cpu", tile=None, encode_tile=None)[0]
    tiled = transferring.transfer_blur(sharp, blurry, [target], tiny_model, "cpu", tile=256, encode_tile=None)[0]
    assert tiled.shape == (330, 500, 3)
    assert np.abs(tiled - whole).max() <= 1 / 255
    code = tiling.extract_code(tiny_model, sharp, blurry, tile=256, overlap=128)
    assert code.shape == (1, tiny_model.kernel_dim, 3, 4) and torch.isfinite(code).all()


# -- novel blur -----------------------------------------------------------------------------------
def test_sampling_is_reproducible_by_seed(tiny_vae):
    target = to_numpy(smooth_image(256, 384, 6))
    first = transferring.synthesize_blur(target, tiny_vae, 2, "cpu", seed=5)
    again = transferring.synthesize_blur(target, tiny_vae, 2, "cpu", seed=5)
    other = transferring.synthesize_blur(target, tiny_vae, 2, "cpu", seed=6)
    assert len(first) == 2 and first[0].shape == target.shape
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert np.abs(first[0] - first[1]).max() > 1e-4  # two samples differ
    assert np.abs(first[0] - other[0]).max() > 1e-4  # another seed, other samples
    codes = transferring.sample_codes(tiny_vae, (2, 3), 3, seed=0, uniform=True)
    assert codes.shape == (3, tiny_vae.kernel_dim, 2, 3) and (codes == codes[..., :1, :1]).all()


def test_sampling_refused_for_non_vae_model(tiny_model):
    with pytest.raises(UserError, match="VAE"):
        transferring.synthesize_blur(np.zeros((64, 64, 3), np.float32), tiny_model, 1)


# -- PSF picture ----------------------------------------------------------------------------------
class ConvolvingModel(torch.nn.Module):
    """Stands in for F: a true convolution with a known kernel plus an offset (any code)."""

    def __init__(self, kernel: torch.Tensor) -> None:
        super().__init__()
        self.kernel = kernel
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def apply(self, sharp: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        r = self.kernel.shape[0] // 2
        weight = self.kernel.flip(0, 1)[None, None].repeat(3, 1, 1, 1)
        return F.conv2d(F.pad(sharp, (r,) * 4), weight, groups=3) + 0.1


def test_psf_recovers_the_kernel_of_a_convolution():
    kernel = torch.zeros(15, 15)
    kernel[7, 3:12] = 1.0
    kernel[4:8, 11] = 1.0
    kernel /= kernel.sum()
    model = ConvolvingModel(kernel)
    psf = probe_psf(model, torch.zeros(1, 8, 2, 3), size=15)
    assert psf.shape == (2, 3, 15, 15, 3)
    np.testing.assert_allclose(psf[1, 2, :, :, 1], kernel.numpy(), atol=1e-6)
    picture = render_psfs(probe_psf(model, torch.zeros(1, 8, 1, 1), size=15), scale=3)
    assert picture.shape == (45, 45, 3) and picture.max() == pytest.approx(1.0)


def test_psf_of_a_real_model_is_normalised(tiny_model):
    psf = probe_psf(tiny_model, torch.randn(1, tiny_model.kernel_dim, 1, 2), size=21)
    assert psf.shape == (1, 2, 21, 21, 3) and (psf >= 0).all()
    sums = psf.sum(axis=(2, 3))
    assert np.all((np.abs(sums - 1) < 1e-4) | (sums == 0))


# -- command line ---------------------------------------------------------------------------------
@pytest.fixture
def files(tmp_path, tiny_model, tiny_vae):
    sharp = smooth_image(256, 256, 7)
    write_image(tmp_path / "x.png", to_numpy(sharp))
    write_image(tmp_path / "y.png", to_numpy(box_blur(sharp)))
    target = to_numpy(smooth_image(200, 264, 8))
    gray16 = np.round(target.mean(axis=2) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "t16.png"), gray16)
    rgba = np.concatenate([np.round(target[:, :, ::-1] * 255), np.full((200, 264, 1), 128)], axis=2)
    cv2.imwrite(str(tmp_path / "t_rgba.png"), rgba.astype(np.uint8))
    tiny_model.save(str(tmp_path / "model.pth"))
    tiny_vae.save(str(tmp_path / "vae.pth"))
    return tmp_path


def test_cli_transfer_keeps_target_format(files):
    d = files
    argv = ["--sharp", str(d / "x.png"), "--blur", str(d / "y.png"), "--target", str(d / "t16.png"),
            "--target", str(d / "t_rgba.png"), "--output-dir", str(d / "out"), "--model", str(d / "model.pth"),
            "--device", "cpu", "--tile", "256"]
    assert run_cli(transfer.main, argv) == 0
    gray = read_image(d / "out" / "t16.png")
    assert (gray.channels, gray.bit_depth, gray.size) == (1, 16, (200, 264))
    rgba = read_image(d / "out" / "t_rgba.png")
    assert rgba.channels == 4 and rgba.alpha is not None and np.allclose(rgba.alpha, 128 / 255)


def test_cli_sample_writes_n_images_and_needs_a_vae(files, capsys):
    d = files
    argv = ["--target", str(d / "t_rgba.png"), "--sample", "2", "--output-dir", str(d / "novel"), "--seed", "3",
            "--device", "cpu"]
    assert run_cli(transfer.main, argv + ["--model", str(d / "vae.pth")]) == 0
    written = sorted(p.name for p in (d / "novel").iterdir())
    assert written == ["t_rgba_sample000.png", "t_rgba_sample001.png"]
    assert run_cli(transfer.main, argv + ["--model", str(d / "model.pth")]) == 2
    assert "model.pth" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["missing", "corrupt", "size", "model"])
def test_cli_errors_exit_2_naming_the_file(files, capsys, case):
    d = files
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    write_image(d / "small.png", np.zeros((64, 64, 3), np.float32))
    blur = {"missing": "nothere.png", "corrupt": "corrupt.png", "size": "small.png"}.get(case, "y.png")
    model = "model.pth" if case != "model" else "x.png"
    argv = ["--sharp", str(d / "x.png"), "--blur", str(d / blur), "--target", str(d / "t16.png"),
            "--output", str(d / "o.png"), "--model", str(d / model), "--device", "cpu"]
    assert run_cli(transfer.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert (blur if case != "model" else model) in err
    assert not (d / "o.png").exists()


# -- transfer.py over many targets: --shard, --skip-existing, --workers, --threads ----------------
def _raw(path) -> np.ndarray:
    """The pixels as stored (bit depth, channels): what "pixel-identical" compares."""
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def _three_targets(d) -> list[str]:
    write_image(d / "t_rgb.png", to_numpy(smooth_image(130, 150, 11)))
    return [str(d / "t16.png"), str(d / "t_rgba.png"), str(d / "t_rgb.png")]


def _transfer_argv(d, targets, out) -> list[str]:
    argv = ["--sharp", str(d / "x.png"), "--blur", str(d / "y.png"), "--output-dir", str(out),
            "--model", str(d / "model.pth"), "--device", "cpu", "--tile", "256"]
    for target in targets:
        argv += ["--target", target]
    return argv


def test_cli_two_shards_write_the_outputs_of_one_run(files, capsys):
    d = files
    targets = _three_targets(d)
    assert run_cli(transfer.main, _transfer_argv(d, targets, d / "whole")) == 0
    capsys.readouterr()
    assert run_cli(transfer.main, _transfer_argv(d, targets, d / "shards") + ["--shard", "1/2"]) == 0
    first = capsys.readouterr().out
    assert "t16.png" in first and "t_rgb.png" in first and "t_rgba.png" not in first  # targets 1 and 3
    assert run_cli(transfer.main, _transfer_argv(d, targets, d / "shards") + ["--shard", "2/2"]) == 0
    names = sorted(p.name for p in (d / "whole").iterdir())
    assert names == ["t16.png", "t_rgb.png", "t_rgba.png"]
    assert sorted(p.name for p in (d / "shards").iterdir()) == names
    for name in names:
        np.testing.assert_array_equal(_raw(d / "shards" / name), _raw(d / "whole" / name))


@pytest.mark.parametrize("extra, flag", [
    (["--shard", "0/2"], "--shard"), (["--shard", "3/2"], "--shard"), (["--shard", "1/0"], "--shard"),
    (["--shard", "a/b"], "--shard"), (["--shard", "2"], "--shard"), (["--shard", "1/2/3"], "--shard"),
    (["--threads", "0"], "--threads"), (["--workers", "0"], "--workers"),
])
def test_cli_bad_shard_threads_workers_exit_2_in_one_line(files, capsys, extra, flag):
    d = files
    assert run_cli(transfer.main, _transfer_argv(d, [str(d / "t16.png")], d / "out") + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and flag in err
    assert not (d / "out").exists()


def test_cli_shard_with_sample_is_an_error(files, capsys):
    d = files
    argv = ["--target", str(d / "t_rgba.png"), "--sample", "2", "--output-dir", str(d / "novel"),
            "--model", str(d / "vae.pth"), "--device", "cpu", "--shard", "1/2"]
    assert run_cli(transfer.main, argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--shard" in err and "--sample" in err
    assert not (d / "novel").exists()


def test_cli_skip_existing_skips_an_existing_output(files, capsys):
    d = files
    (d / "out").mkdir()
    write_image(d / "out" / "t16.png", np.zeros((8, 8, 3), np.float32))  # an earlier run's output
    before = (d / "out" / "t16.png").read_bytes()
    argv = _transfer_argv(d, [str(d / "t16.png"), str(d / "t_rgba.png")], d / "out")
    assert run_cli(transfer.main, argv + ["--skip-existing"]) == 0
    out = capsys.readouterr().out
    assert f"skipped {d / 't16.png'}" in out and f"wrote {d / 'out' / 't_rgba.png'}" in out
    assert (d / "out" / "t16.png").read_bytes() == before
    assert read_image(d / "out" / "t_rgba.png").size == (200, 264)
    assert run_cli(transfer.main, argv + ["--skip-existing"]) == 0  # all there: nothing to do, no model run
    assert "nothing to do" in capsys.readouterr().out
    # --sample: the missing samples are the ones a whole run writes
    sample = ["--target", str(d / "t_rgba.png"), "--sample", "2", "--seed", "3", "--model", str(d / "vae.pth"),
              "--device", "cpu", "--output-dir"]
    assert run_cli(transfer.main, sample + [str(d / "novel")]) == 0
    (d / "part").mkdir()
    write_image(d / "part" / "t_rgba_sample000.png", np.zeros((8, 8, 3), np.float32))
    assert run_cli(transfer.main, sample + [str(d / "part"), "--skip-existing"]) == 0
    assert "skipped sample 0" in capsys.readouterr().out
    assert _raw(d / "part" / "t_rgba_sample000.png").shape == (8, 8, 3)
    np.testing.assert_array_equal(_raw(d / "part" / "t_rgba_sample001.png"), _raw(d / "novel" / "t_rgba_sample001.png"))


@pytest.mark.slow
def test_cli_workers_and_threads_write_the_same_images(files):
    d = files
    targets = [str(d / "t16.png"), str(d / "t_rgba.png")]
    threads = torch.get_num_threads()
    assert run_cli(transfer.main, _transfer_argv(d, targets, d / "one") + ["--threads", "1"]) == 0
    assert torch.get_num_threads() == threads  # restored for the rest of the process
    assert run_cli(transfer.main, _transfer_argv(d, targets, d / "two") + ["--workers", "2", "--threads", "2"]) == 0
    for name in ("t16.png", "t_rgba.png"):
        one, two = read_image(d / "one" / name), read_image(d / "two" / name)
        assert (two.channels, two.bit_depth) == (one.channels, one.bit_depth)
        np.testing.assert_allclose(two.rgb, one.rgb, atol=1 / 255)  # other thread counts: float rounding only


# -- augment_dataset ------------------------------------------------------------------------------
def _write_source_tree(root, count: int = 3) -> None:
    for i in range(count):
        sharp = smooth_image(128, 128, 20 + i)
        write_image(root / "sharp" / "000" / f"{i:08d}.png", to_numpy(sharp))
        write_image(root / "blur" / "000" / f"{i:08d}.png", to_numpy(box_blur(sharp, 3 + 2 * i)))


@pytest.mark.parametrize("fmt", ["folder", "lmdb"])
def test_augment_dataset_reads_back_as_a_paired_dataset(tmp_path, tiny_model, fmt):
    import yaml

    from data.paired import PairedFolderDataset, PairedLMDBDataset
    from scripts.augment_dataset import augment_dataset, open_source

    _write_source_tree(tmp_path / "src")
    targets = []
    for i, size in enumerate([(128, 160), (130, 128)]):
        targets.append(tmp_path / "targets" / f"t{i}.png")
        write_image(targets[-1], to_numpy(smooth_image(*size, 30 + i)))
    source = open_source(str(tmp_path / "src"))
    out = tmp_path / "aug"
    count = augment_dataset(source, targets, tiny_model, out, per_target=2, seed=4, fmt=fmt, progress=False)
    assert count == 4
    if fmt == "folder":
        dataset = PairedFolderDataset(out, crop_size=None, train=False)
    else:
        dataset = PairedLMDBDataset(out / "sharp.lmdb", out / "blur.lmdb", crop_size=None, train=False)
    assert len(dataset) == 4
    info = yaml.safe_load((out / "augment_info.yml").read_text())
    for i, record in enumerate(info["samples"]):
        sample = dataset[i]
        target = read_image(targets[i // 2]).rgb
        assert record["target"] == str(targets[i // 2])
        np.testing.assert_allclose(sample["sharp"].permute(1, 2, 0).numpy(), target, atol=0.5 / 255 + 1e-6)
        pair = source[record["source_index"]]
        expected = transferring.transfer_blur(pair["sharp"], pair["blur"], [target], tiny_model, "cpu")[0]
        np.testing.assert_allclose(sample["blur"].permute(1, 2, 0).numpy(), expected, atol=0.5 / 255 + 1e-5)
    # seeded: the pairs drawn depend on the seed only
    again = augment_dataset(source, targets, tiny_model, tmp_path / "again", 2, seed=4, progress=False)
    assert again == 4
    info_again = yaml.safe_load((tmp_path / "again" / "augment_info.yml").read_text())
    assert [r["source_index"] for r in info_again["samples"]] == [r["source_index"] for r in info["samples"]]


def test_augment_cli_errors_name_the_folder(tmp_path, capsys):
    from scripts.augment_dataset import main

    argv = ["--source", str(tmp_path / "nope"), "--targets", str(tmp_path), "--out", str(tmp_path / "o"),
            "--model", str(tmp_path / "m.pth"), "--device", "cpu"]
    write_image(tmp_path / "t.png", np.zeros((8, 8, 3), np.float32))
    assert run_cli(main, argv) == 2
    assert "nope" in capsys.readouterr().err


def test_augment_shards_are_disjoint_and_merge_to_the_whole_run(tmp_path, tiny_model, capsys):
    import yaml

    from scripts.augment_dataset import augment_dataset, main, open_source

    _write_source_tree(tmp_path / "src")
    for i, size in enumerate([(128, 160), (130, 128), (128, 128)]):
        write_image(tmp_path / "targets" / f"t{i}.png", to_numpy(smooth_image(*size, 50 + i)))
    targets = sorted((tmp_path / "targets").iterdir())
    source = open_source(str(tmp_path / "src"))
    whole = augment_dataset(source, targets, tiny_model, tmp_path / "whole", per_target=2, seed=4, progress=False)
    first = augment_dataset(source, targets, tiny_model, tmp_path / "s1", per_target=2, seed=4, progress=False,
                            shard=(1, 4))
    assert (whole, first) == (6, 2)
    tiny_model.save(str(tmp_path / "m.pth"))
    argv = ["--source", str(tmp_path / "src"), "--targets", str(tmp_path / "targets"), "--per-target", "2",
            "--seed", "4", "--model", str(tmp_path / "m.pth"), "--device", "cpu",
            "--threads", str(torch.get_num_threads())]
    for k in (2, 3, 4):
        assert run_cli(main, argv + ["--out", str(tmp_path / f"s{k}"), "--shard", f"{k}/4"]) == 0
    assert "shard 4/4" in capsys.readouterr().out

    def names(root):
        return {p.relative_to(root).as_posix() for p in root.rglob("*.png")}

    shards = [names(tmp_path / f"s{k}") for k in (1, 2, 3, 4)]
    assert all(a.isdisjoint(b) for i, a in enumerate(shards) for b in shards[i + 1:])
    assert set().union(*shards) == names(tmp_path / "whole")
    assert shards[0] == {f"{side}/000/{i:08d}.png" for side in ("sharp", "blur") for i in (0, 4)}
    for k, shard in enumerate(shards, 1):
        for rel in shard:
            np.testing.assert_array_equal(_raw(tmp_path / f"s{k}" / rel), _raw(tmp_path / "whole" / rel))
    info = yaml.safe_load((tmp_path / "s2" / "augment_info.yml").read_text())
    assert (info["shard"], info["count"], info["total"]) == ("2/4", 2, 6)
    assert [r["index"] for r in info["samples"]] == [1, 5]
    whole_info = yaml.safe_load((tmp_path / "whole" / "augment_info.yml").read_text())
    assert whole_info["shard"] is None
    assert [whole_info["samples"][r["index"]] for r in info["samples"]] == info["samples"]
    # more shards than samples: that shard has nothing to write
    with pytest.raises(UserError, match="no samples"):
        augment_dataset(source, targets, tiny_model, tmp_path / "s7", per_target=2, shard=(7, 7), progress=False)
    assert not (tmp_path / "s7").exists()


@pytest.mark.parametrize("extra, flag", [(["--shard", "0/3"], "--shard"), (["--shard", "x"], "--shard"),
                                         (["--threads", "0"], "--threads")])
def test_augment_cli_bad_shard_or_threads_exit_2_in_one_line(tmp_path, capsys, extra, flag):
    from scripts.augment_dataset import main

    argv = ["--source", str(tmp_path), "--targets", str(tmp_path), "--out", str(tmp_path / "o"),
            "--model", str(tmp_path / "m.pth"), "--device", "cpu"]
    assert run_cli(main, argv + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and flag in err
    assert not (tmp_path / "o").exists()


# -- transfer_demo --------------------------------------------------------------------------------
def test_transfer_demo_grid(tmp_path, tiny_model, capsys):
    from scripts.transfer_demo import main, transfer_figure

    sharp = to_numpy(smooth_image(128, 128, 40))
    kernel = np.zeros((9, 9), np.float32)
    kernel[4, 2:7] = 0.2
    figure = transfer_figure(tiny_model, sharp, sharp, [to_numpy(smooth_image(128, 192, 41))], kernel, panel=96)
    assert figure.dtype == np.uint8 and figure.shape == (2 * (96 + 24 + 6) + 6, 5 * (96 + 6) + 6, 3)
    (tmp_path / "k.npy").write_bytes(b"not numpy")
    write_image(tmp_path / "x.png", sharp)
    tiny_model.save(str(tmp_path / "m.pth"))
    argv = ["--model", str(tmp_path / "m.pth"), "--sharp", str(tmp_path / "x.png"), "--blur", str(tmp_path / "x.png"),
            "--target", str(tmp_path / "x.png"), "--output", str(tmp_path / "g.png"), "--device", "cpu"]
    assert run_cli(main, argv + ["--kernel", str(tmp_path / "k.npy")]) == 2
    assert "k.npy" in capsys.readouterr().err
    assert run_cli(main, argv) == 0 and read_image(tmp_path / "g.png").size == (2 * 286 + 6, 4 * 262 + 6)
