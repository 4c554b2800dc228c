"""train.py on the CPU with configs/train/ci_tiny.yml: outputs, exact resume, kill mid-save, config
errors, NaN handling, the learning-rate schedule and the training forward pass."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import train
from models import KernelSpace
from models.init import INIT_SCHEMES
from training import loop, step
from training.config import load_train_config, train_schema
from utils.dist import DistInfo
from utils.errors import UserError, run_cli
from utils.lr_scheduler import CosineAnnealingRestartLR

REPO = Path(__file__).resolve().parent.parent
CI_TINY = str(REPO / "configs" / "train" / "ci_tiny.yml")
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny model; avoids oversubscribing a busy CPU


def run_train(root: Path, *sets: str, resume: str | None = None) -> int:
    argv = ["-opt", CI_TINY, "--set", f"path.root={root}", "--set", "logger.progress_bar=false"]
    for item in sets:
        argv += ["--set", item]
    if resume:
        argv += ["--resume", resume]
    return run_cli(train.main, argv)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return KernelSpace.load(str(path)).state_dict()


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[0]}"


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory) -> Path:
    """One complete ci_tiny run (10 iterations); returns its experiment folder."""
    root = tmp_path_factory.mktemp("ci")
    assert run_train(root) == 0
    return root / "ci_tiny"


def test_ci_tiny_writes_every_output(ci_run):
    models = ci_run / "models"
    states = ci_run / "training_state"
    assert sorted(p.name for p in models.iterdir()) == ["10.pth", "5.pth", "best.pth", "latest.pth"]
    assert sorted(p.name for p in states.iterdir()) == ["10.state", "5.state"]
    assert list((ci_run / "tb").glob("events.out.tfevents.*"))
    log = (ci_run / "train.log").read_text()
    assert "iter 10" in log and "validation PSNR" in log and "with another pair's code" in log
    assert (ci_run / "config.yml").is_file()

    model = KernelSpace.load(str(models / "latest.pth"))
    meta = model.meta
    assert meta["iteration"] == 10 and meta["config_name"] == "ci_tiny" and meta["wall_time"] > 0
    assert meta["mean_code"].shape == (model.kernel_dim,)
    assert torch.isfinite(meta["mean_code"]).all() and meta["mean_code"].abs().sum() > 0
    assert_same_weights(weights(models / "latest.pth"), weights(models / "10.pth"))
    # training changed the weights: iteration 5 and 10 differ
    with pytest.raises(AssertionError):
        assert_same_weights(weights(models / "5.pth"), weights(models / "10.pth"))
    state = torch.load(states / "10.state", weights_only=True)
    assert state["iteration"] == 10 and {"python", "numpy", "torch"} <= state["rng"][0].keys()
    assert state["data"]["epoch_start"] == 20  # 10 batches of 2 in the first epoch of 64 samples


def test_tensorboard_has_scalars_and_images(ci_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(ci_run / "tb"))
    acc.Reload()
    tags = acc.Tags()
    assert {"loss/total", "loss/pixel", "lr", "val/psnr", "val/psnr_other_code", "val/psnr_identity"} <= set(
        tags["scalars"])
    assert "train/x_y_reblur" in tags["images"]


VAE = ["KernelWizard.use_vae=true", "train.kl_weight=0.01", "datasets.train.synthetic.num_samples=6"]


@pytest.fixture(scope="module")
def vae_straight(tmp_path_factory) -> Path:
    """models/ of 10 straight iterations of a VAE ci_tiny with 3 batches per epoch."""
    root = tmp_path_factory.mktemp("vae")
    assert run_train(root, *VAE) == 0
    return root / "ci_tiny" / "models"


def test_resume_is_bit_identical(tmp_path, vae_straight):
    """10 iterations straight == 5 + resume + 5, with a VAE (RNG noise) and epoch boundaries (3 batches
    per epoch) so that the RNG states and the sampler position both matter."""
    assert run_train(tmp_path / "b", *VAE, "train.niter=5") == 0
    assert run_train(tmp_path / "b", *VAE, resume="auto") == 0
    a, b = vae_straight, tmp_path / "b" / "ci_tiny" / "models"
    assert_same_weights(weights(a / "10.pth"), weights(b / "10.pth"))
    meta_a, meta_b = KernelSpace.load(str(a / "10.pth")).meta, KernelSpace.load(str(b / "10.pth")).meta
    assert torch.equal(meta_a["mean_code"], meta_b["mean_code"])
    assert "resumed from" in (tmp_path / "b" / "ci_tiny" / "train.log").read_text()


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    import train
    from utils.errors import run_cli

    real_save = torch.save

    def save_then_die(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        name = os.path.basename(str(f))
        if name.startswith(".10.state."):  # the temporary file of the last training state
            with open(f, "r+b") as fh:
                fh.truncate(os.path.getsize(f) // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    torch.save = save_then_die
    sys.exit(run_cli(train.main, sys.argv[1:]))
    """
)


@pytest.mark.slow
def test_sigkill_mid_save_resumes_from_previous_state(tmp_path, vae_straight):
    argv = ["-opt", CI_TINY, "--set", f"path.root={tmp_path / 'b'}", "--set", "logger.progress_bar=false"]
    argv += [x for item in VAE for x in ("--set", item)]
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, *argv], cwd=REPO, capture_output=True, timeout=600,
                          env=SUBPROCESS_ENV)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    exp = tmp_path / "b" / "ci_tiny"
    assert not (exp / "training_state" / "10.state").exists()  # the half-written state never got its name
    assert list((exp / "training_state").glob(".10.state.*"))  # its temporary file is still there
    assert (exp / "models" / "10.pth").is_file()  # the model was written before the state

    assert run_train(tmp_path / "b", *VAE, resume="auto") == 0
    log = (exp / "train.log").read_text()
    assert "training_state/5.state (iteration 5)" in log
    assert not list((exp / "training_state").glob(".*.tmp"))
    assert_same_weights(weights(vae_straight / "10.pth"), weights(exp / "models" / "10.pth"))


@pytest.mark.slow
def test_unknown_config_key_exits_2_naming_it(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(Path(CI_TINY).read_text().replace("val_freq:", "val_freqq:"))
    proc = subprocess.run([sys.executable, "train.py", "-opt", str(bad), "--set", f"path.root={tmp_path}"],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env=SUBPROCESS_ENV)
    assert proc.returncode == 2
    assert "train.val_freqq" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_override_errors_exit_2(tmp_path, capsys):
    assert run_train(tmp_path, "train.nitre=3") == 2
    assert "train.nitre" in capsys.readouterr().err
    assert run_train(tmp_path, "train.amp=fp16") == 2  # fp16 needs CUDA
    assert "train.amp" in capsys.readouterr().err
    assert run_train(tmp_path, "train.restarts=[3,2]", "train.T_period=[2,2,2]", "train.restart_weights=[]") == 2
    assert "train.restarts" in capsys.readouterr().err
    assert run_train(tmp_path, "train.init=xavier") == 2
    assert "train.init" in capsys.readouterr().err
    assert run_train(tmp_path, "train.kernel_weight=-1") == 2
    assert "train.kernel_weight" in capsys.readouterr().err
    lmdb = ["datasets.train.mode=lmdb", "datasets.train.dataroot_HQ=x", "datasets.train.dataroot_LQ=y"]
    assert run_train(tmp_path, "train.kernel_weight=1", *lmdb) == 2
    assert "train.kernel_weight" in capsys.readouterr().err
    assert run_train(tmp_path, "train.kernel_teacher=1.5") == 2
    assert "train.kernel_teacher" in capsys.readouterr().err
    assert run_train(tmp_path, "train.kernel_batch=4") == 2  # the unet type has no kernel auto-encoder
    assert "train.kernel_batch" in capsys.readouterr().err
    psf = ("KernelWizard.generator=psf", "KernelWizard.PSF.size=15", "train.kernel_batch=4")
    assert run_train(tmp_path, *psf) == 2  # no kernel_weight: the auto-encoded kernels would weigh nothing
    assert "train.kernel_weight > 0" in capsys.readouterr().err


def test_allowed_values_come_from_the_schema(tmp_path, capsys):
    """Keys with a few allowed values are checked from the ``__choices__`` tables of configs/defaults/."""
    assert run_train(tmp_path, "train.pixel_criterion=l3") == 2
    err = capsys.readouterr().err.strip()
    assert "'train.pixel_criterion' must be one of cb, l1, l2, got 'l3'" in err and len(err.splitlines()) == 1
    assert run_train(tmp_path, "datasets.train.mode=video") == 2
    assert "'datasets.train.mode' must be one of synthetic, lmdb" in capsys.readouterr().err
    assert run_train(tmp_path, "datasets.val.synthetic.source=noise") == 2
    assert "'datasets.val.synthetic.source' must be one of deadleaves, folder" in capsys.readouterr().err
    assert train_schema()["__choices__"]["train.init"] == list(INIT_SCHEMES)
    assert "__choices__" not in load_train_config(CI_TINY)["datasets"]["train"]


def test_existing_run_is_not_overwritten(ci_run, capsys):
    assert run_train(ci_run.parent) == 2
    assert "--resume auto" in capsys.readouterr().err


def test_nonfinite_losses_skip_steps_then_stop(tmp_path, monkeypatch):
    real = step.pixel_loss
    calls = {"n": 0}

    def nan_on_second_call(pred, target, criterion):
        calls["n"] += 1
        loss = real(pred, target, criterion)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(step, "pixel_loss", nan_on_second_call)
    assert run_train(tmp_path / "one", "train.niter=4", "train.val_freq=0") == 0
    log = (tmp_path / "one" / "ci_tiny" / "train.log").read_text()
    assert "iteration 2: loss is nan; step skipped" in log
    state = torch.load(tmp_path / "one" / "ci_tiny" / "training_state" / "4.state", weights_only=True)
    assert state["optimizer"]["state"][0]["step"] == 3  # 4 iterations, one update skipped

    monkeypatch.setattr(step, "pixel_loss", lambda pred, target, crit: real(pred, target, crit) + float("inf"))
    with pytest.raises(UserError, match=r"iteration 3: loss is inf for 3 iterations in a row"):
        loop.train(load_train_config(CI_TINY, [f"path.root={tmp_path / 'all'}", "train.max_nonfinite=3",
                                                      "logger.progress_bar=false"]))


def test_restart_schedule_matches_the_closed_form():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=1.0)
    sched = CosineAnnealingRestartLR(opt, periods=[4, 2, 2], restarts=[4, 8], restart_weights=[0.5, 1.0], eta_min=0.1)
    lrs = []
    for _ in range(11):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [1.0, 0.1 + 0.9 * 0.5 * (1 + 2**-0.5), 0.55, 0.1 + 0.9 * 0.5 * (1 - 2**-0.5),  # period 1
                0.1 + 0.45, 0.1 + 0.45 * 0.5, 0.1, 0.1,  # period 2 (weight 0.5, length 2, then held)
                1.0, 0.55, 0.1]  # period 3
    assert lrs == pytest.approx(expected)
    with pytest.raises(UserError, match="T_period"):
        CosineAnnealingRestartLR(opt, periods=[4, 2], restarts=[4, 8])


def test_training_forward_equals_apply_of_encode(tiny_config):
    torch.manual_seed(0)
    ks = KernelSpace.from_config(tiny_config)
    x, y = torch.rand(2, 3, 72, 100), torch.rand(2, 3, 72, 100)
    pred, code_mean, kl = step.TrainForward(ks)(x, y)
    code = ks.encode(x, y)
    assert torch.allclose(pred, ks.apply(x, code), atol=1e-6)
    assert torch.allclose(code_mean, code.mean(dim=(2, 3)), atol=1e-6)
    assert float(kl) == 0.0


class MeanCodeModel(torch.nn.Module):
    """A kernel space whose code is the blurry image's mean and whose F shifts x to that mean."""

    def extract_code(self, sharp: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
        return blur.mean(dim=(1, 2, 3)).reshape(-1, 1, 1, 1)

    def apply(self, sharp: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return sharp - sharp.mean(dim=(1, 2, 3), keepdim=True) + code


def test_validate_scores_another_pairs_code_for_any_batch_size():
    sharp = torch.full((3, 3, 8, 8), 0.5)
    blur = torch.stack([torch.full((3, 8, 8), v) for v in (0.2, 0.6, 0.9)])
    batches = [{"sharp": sharp[i:i + n], "blur": blur[i:i + n]} for n in (1, 3) for i in range(0, 3, n)]
    by_one, whole = batches[:3], batches[3:]
    for loader in (by_one, whole):
        scores = loop.validate(MeanCodeModel(), loader, torch.device("cpu"))
        assert scores.psnr == pytest.approx(100.0)  # the 1e-10 floor: F reproduces y exactly
        assert scores.other_code_psnr < 15 and scores.identity_psnr < 15
    # one validation image: there is no other pair
    assert math.isnan(loop.validate(MeanCodeModel(), by_one[:1], torch.device("cpu")).other_code_psnr)


@pytest.mark.parametrize("criterion, mean_loss", [
    ("cb", lambda p, t: torch.sqrt((p - t) ** 2 + 1e-6).mean()),
    ("l1", lambda p, t: (p - t).abs().mean()),
    ("l2", lambda p, t: ((p - t) ** 2).mean()),
])
def test_pixel_loss_is_the_published_sum(criterion, mean_loss):
    pred, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    expected = mean_loss(pred, target) * pred.numel()
    assert step.pixel_loss(pred, target, criterion).item() == pytest.approx(expected.item(), rel=1e-5)


def test_kernel_extractor_learns_from_the_first_steps():
    """Regression: with a mean-reduced loss, G's gradients at the default initialisation (~1e-12) lay
    far below Adam's eps (1e-8); its weights moved ~1e-8 per step and the code stayed unused."""
    cfg = load_train_config(CI_TINY)
    torch.manual_seed(0)
    device = torch.device("cpu")
    ks = loop.build_model(cfg, device)
    before = {k: v.detach().clone() for k, v in ks.named_parameters() if k.startswith("extractor.")}
    optimizer, _ = loop.build_optimizer(cfg, ks)
    forward = step.TrainForward(ks)
    sharp = torch.rand(2, 3, 64, 64)
    blur = torch.nn.functional.avg_pool2d(sharp, 5, 1, 2, count_include_pad=False)
    for _ in range(3):
        result = step.train_step(forward, sharp, blur, optimizer, torch.amp.GradScaler("cpu", enabled=False),
                                  step.autocast_context("none", device), cfg, DistInfo())
        assert not result.skipped
    lr = cfg["train"]["lr_G"]
    for name, param in ks.named_parameters():
        if name in before:
            moved = (param.detach() - before[name]).abs().mean().item()
            assert moved > 0.3 * lr, f"{name} moved {moved:.3g} in 3 steps (lr {lr})"


def test_kernel_code_loss_trains_with_he_init(tmp_path):
    """ci_tiny with the options of the shipped model's config: the kernel-code loss, the teacher codes
    and He init."""
    assert run_train(tmp_path, "train.kernel_weight=10", "train.kernel_teacher=0.5", "train.init=he",
                     "train.niter=4", "train.T_period=[4]",
                     "train.val_freq=0", "logger.save_checkpoint_freq=0", "logger.print_freq=2") == 0
    log = (tmp_path / "ci_tiny" / "train.log").read_text()
    codes = [float(line.split("kernel code ")[1].split()[0]) for line in log.splitlines() if "kernel code " in line]
    assert len(codes) == 2 and all(math.isfinite(c) and c > 0 for c in codes)


def test_teacher_codes_replace_g_for_the_first_samples(tiny_config):
    torch.manual_seed(0)
    ks = KernelSpace.from_config(tiny_config).eval()
    sharp = torch.rand(3, 3, 128, 128)
    blur = torch.nn.functional.avg_pool2d(sharp, 5, 1, 2, count_include_pad=False)
    teacher = torch.randn(2, ks.kernel_dim)
    with torch.no_grad():
        pred, code_mean, _ = step.TrainForward(ks)(sharp, blur, teacher)
        expected_teacher = ks.apply(sharp[:2], teacher[:, :, None, None])
        expected_g = ks.apply(sharp[2:], ks.extract_code(sharp[2:], blur[2:]))
        g_code = ks.extract_code(sharp, blur).mean(dim=(2, 3))
    torch.testing.assert_close(pred[:2], expected_teacher, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(pred[2:], expected_g, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(code_mean, g_code, rtol=1e-4, atol=1e-6)  # the loss still sees G's code
