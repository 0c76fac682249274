#!/usr/bin/env python3
"""Train the stand-in MGLD-VSR model on natural video and images that packages ship.

    python benchmarks/standin/train.py [--seed 0] [--threads 1] [--work DIR] [--from-stage NAME]

Stages (each prints its wall and process CPU time):
1. ``autoencoder``: the video VAE (encoder + temporal CFW decoder) on 5-frame HR windows of 64 px;
   the CFW features come from the same encoder run on the bicubically upsampled degraded LR, as in
   the official CFW. Then the latent is rescaled exactly so that 0.18215 * z has unit std, and the
   encoder is copied into the first stage (the official CFW VAE reuses SD's encoder the same way).
2. ``latents``: scaled HR latents (posterior mode: the diffusion target) and LR latents (a posterior
   sample of the upsampled LR, as the sampler draws it) of every training frame.
3. ``diffusion``: UNet + time-aware LR encoder, eps prediction on the pack's 1000-step schedule, the
   LR encoder fed the LR latent at the same t, the empty-prompt context of the stand-in's text tower,
   5-frame windows (the temporal middle block learns), 16x16 latent crops then 32x32 (the native tile).
4. ``evaluate``: denoising error on held-out frames of the held-out clip, next to the trivial
   predictors (eps = 0, and x0 = the LR latent), after saving the weights (fp16) and loading them
   back through the pack's loaders.

The stand-in is reproducible from ``--seed`` for a given torch version and thread count. With
``--work DIR`` each stage's result is kept, and ``--from-stage`` resumes from it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import platform
import time

import numpy as np
import torch
from torch.nn import functional as F

import _path  # noqa: F401
import data
import model
from mgld_vsr.models.vae import LATENT_SCALE
from mgld_vsr.pipeline.decoding.colorfix import adain_color_fix
from mgld_vsr.pipeline.frames import bicubic_upsample
from mgld_vsr.pipeline.sampling.schedule import TRAIN_TIMESTEPS, base_schedule

STAGES = ("autoencoder", "latents", "diffusion", "evaluate")
WINDOW = 5


@dataclasses.dataclass(frozen=True)
class Budget:
    """Steps of each training phase (the CPU budget: about 40 CPU-minutes on one thread)."""

    autoencoder_steps: int = 1400
    autoencoder_crop: int = 64
    autoencoder_lr: float = 1e-3
    diffusion_small_steps: int = 1400
    diffusion_small_crop: int = 16  # latent pixels
    diffusion_small_batch: int = 4  # windows
    diffusion_steps: int = 1400
    diffusion_crop: int = model.NATIVE_TILE
    diffusion_batch: int = 2
    lr: float = 5e-4
    ema: float = 0.998

    def scaled(self, factor: float) -> "Budget":
        return dataclasses.replace(self, **{f: max(1, int(round(getattr(self, f) * factor)))
                                            for f in ("autoencoder_steps", "diffusion_small_steps", "diffusion_steps")})


class Clock:
    """Wall and process CPU time of each stage.

    With a work directory the times are kept in ``stage_times.json`` there, so a resumed run
    reports (and stores in the weights' metadata) the times of the stages it did not rerun.
    """

    def __init__(self, work: pathlib.Path | None = None):
        self.rows = []
        self.file = None if work is None else work / "stage_times.json"
        self.kept = json.loads(self.file.read_text()) if self.file is not None and self.file.is_file() else {}

    @property
    def total_wall(self) -> float:
        return sum(row[1] for row in self.rows)

    @property
    def total_cpu(self) -> float:
        return sum(row[2] for row in self.rows)

    def stage(self, name: str, run: bool):
        """Time stage ``name``; a stage that is not ``run`` (resumed from the work directory) keeps its stored times."""
        clock = self

        class _Stage:
            def __enter__(self):
                self.wall, self.cpu = time.perf_counter(), time.process_time()
                print(f"\n== {name}" + ("" if run else " (kept from an earlier run)"), flush=True)

            def __exit__(self, *exc):
                wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
                if not run and name in clock.kept:
                    wall, cpu = clock.kept[name]
                clock.rows.append((name, wall, cpu))
                if run and clock.file is not None and exc[0] is None:
                    clock.kept[name] = (wall, cpu)
                    clock.file.write_text(json.dumps(clock.kept))
                print(f"== {name}: wall {wall / 60:.1f} min, CPU {cpu / 60:.1f} min", flush=True)

        return _Stage()


def to_model_range(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``[N,H,W,3]`` -> ``[N,3,H,W]`` in [-1, 1] (as ``pipeline/frames.py``)."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def upsampled_lr(lr: np.ndarray) -> torch.Tensor:
    """LR frames upsampled x4 exactly as the pipeline prepares them (bicubic, clamped)."""
    return bicubic_upsample(to_model_range(lr), float(data.SCALE))


class Sources:
    """The training material: shots of the training clips and the photographs."""

    def __init__(self):
        self.shots = [shot for name in data.TRAIN_CLIPS for shot in data.shots(data.read_clip(name))]
        self.images = [data.read_image(name) for name in data.TRAIN_IMAGES]
        print(f"training clips {', '.join(data.TRAIN_CLIPS)}: {len(self.shots)} shots, "
              f"{sum(s.shape[0] for s in self.shots)} frames; {len(self.images)} photographs "
              f"({', '.join(data.TRAIN_IMAGES)}); held out: {data.HELD_OUT_CLIP}")

    def window(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """A random 5-frame HR window of ``size`` px: a clip crop (half the time) or a panned photograph."""
        if rng.random() < 0.5:
            shot = self.shots[int(rng.integers(len(self.shots)))]
            return data.random_window(shot, WINDOW, (size, size), rng)
        image = self.images[int(rng.integers(len(self.images)))]
        return data.random_pan(image, WINDOW, (size, size), rng)


# ---------------------------------------------------------------------------------------------
# 1. Autoencoder
# ---------------------------------------------------------------------------------------------

def train_autoencoder(sources: Sources, budget: Budget, seed: int):
    rng = np.random.default_rng(seed)
    vae = model.build_autoencoder(seed)
    vae.train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=budget.autoencoder_lr, weight_decay=0.0)
    steps = budget.autoencoder_steps
    generator = torch.Generator().manual_seed(seed)
    log_l1 = []
    for step in range(steps):
        _set_lr(optimizer, budget.autoencoder_lr, step, steps)
        hr = sources.window(budget.autoencoder_crop, rng)
        lr = data.Degradation.draw(rng).apply(hr, rng)
        target = to_model_range(hr)
        posterior, _ = vae.encode(target)
        z = posterior.sample(generator=generator)
        w = float(rng.choice([0.0, 0.5, 1.0], p=[0.3, 0.2, 0.5]))
        features = None
        if w > 0:
            # CFW learns to pull an imperfect latent (as a diffusion result is) back towards the LR.
            _, features = vae.encode(upsampled_lr(lr))
            z = z + float(rng.uniform(0.0, 0.3)) * z.detach().std() * torch.randn(z.shape, generator=generator)
        out = vae.decode(z, features, w)
        # The decoder ends in GroupNorm(32) over 32 channels (per-channel normalisation), so a crop's own
        # mean colour and contrast cannot reach its output: the pipeline's colour fix (AdaIN against the
        # LR frame, on by default) sets them. The loss therefore compares colour-fixed output, plus a
        # small raw term that keeps the raw output in range.
        l1 = (adain_color_fix(out, target) - target).abs().mean()
        raw = (out - target).abs().mean()
        kl = 0.5 * (posterior.mean.square() + posterior.var - 1.0 - posterior.logvar).mean()
        loss = l1 + 0.1 * raw + 1e-5 * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        log_l1.append(l1.item())
        if (step + 1) % 100 == 0 or step + 1 == steps:
            recent = float(np.mean(log_l1[-100:]))
            print(f"  autoencoder step {step + 1}/{steps}: colour-fixed L1 {recent:.4f} "
                  f"(about {_psnr_from_l1(recent):.1f} dB)", flush=True)
    vae.eval().requires_grad_(False)
    factor = latent_factor(vae, sources, seed)
    model.rescale_latent(vae, factor)
    print(f"  latent rescaled by {factor:.4f}: 0.18215 * z now has unit std")
    return vae


def _psnr_from_l1(l1: float) -> float:
    """Rough PSNR of a [-1, 1] image with mean absolute error ``l1`` (Laplacian errors: MSE = 2 L1^2)."""
    rmse = math.sqrt(2.0) * l1 / 2.0
    return 20 * math.log10(1.0 / max(rmse, 1e-8))


def latent_factor(vae, sources: Sources, seed: int) -> float:
    """The factor that gives ``LATENT_SCALE * z`` unit std over training windows (posterior means)."""
    rng = np.random.default_rng(seed + 1)
    means = []
    with torch.no_grad():
        for _ in range(16):
            posterior, _ = vae.encode(to_model_range(sources.window(128, rng)))
            means.append(posterior.mean)
    return float(1.0 / (LATENT_SCALE * torch.cat(means).std()))


# ---------------------------------------------------------------------------------------------
# 2. Latents
# ---------------------------------------------------------------------------------------------

def encode(first_stage, frames: np.ndarray | torch.Tensor, sample: bool, generator: torch.Generator) -> torch.Tensor:
    """Scaled latents of ``frames`` (uint8, or already in model range), 4 frames at a time."""
    x = frames if isinstance(frames, torch.Tensor) else to_model_range(frames)
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], 4):
            posterior = first_stage.encode(x[start:start + 4])
            z = posterior.sample(generator=generator) if sample else posterior.mode()
            out.append(LATENT_SCALE * z)
    return torch.cat(out)


def fit32(frames: np.ndarray) -> np.ndarray:
    """Centre crop to multiples of 32 px (no padding inside the training latents)."""
    h, w = frames.shape[1] // 32 * 32, frames.shape[2] // 32 * 32
    y, x = (frames.shape[1] - h) // 2, (frames.shape[2] - w) // 2
    return frames[:, y:y + h, x:x + w]


def make_latents(first_stage, sources: Sources, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(hr_latent, lr_latent)`` sequences ``[T,4,h,w]``: each clip shot (one degradation per shot),
    and two panning shots of 9 frames per photograph."""
    rng = np.random.default_rng(seed + 2)
    generator = torch.Generator().manual_seed(seed + 2)
    sequences = []
    material = [fit32(shot) for shot in sources.shots]
    for image in sources.images:
        for _ in range(2):
            speed = 3
            h = (image.shape[0] - 8 * speed) // 32 * 32
            w = (image.shape[1] - 8 * speed) // 32 * 32
            material.append(data.random_pan(image, 9, (h, w), rng, max_speed=speed))
    for hr in material:
        lr = data.Degradation.draw(rng).apply(np.ascontiguousarray(hr), rng)
        sequences.append((encode(first_stage, hr, False, generator), encode(first_stage, upsampled_lr(lr), True, generator)))
    frames = sum(s[0].shape[0] for s in sequences)
    print(f"  {len(sequences)} sequences, {frames} frames; latent std HR {torch.cat([s[0].flatten() for s in sequences]).std():.3f}")
    return sequences


# ---------------------------------------------------------------------------------------------
# 3. Diffusion
# ---------------------------------------------------------------------------------------------

def latent_batch(sequences, windows: int, crop: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``windows`` random 5-frame windows of ``crop`` latent px: ``[windows*5,4,crop,crop]`` HR and LR latents."""
    usable = [s for s in sequences if min(s[0].shape[-2:]) >= crop and s[0].shape[0] >= WINDOW]
    sizes = np.array([s[0].shape[0] * s[0].shape[-2] * s[0].shape[-1] for s in usable], dtype=np.float64)
    hrs, lrs = [], []
    for _ in range(windows):
        hr, lr = usable[int(rng.choice(len(usable), p=sizes / sizes.sum()))]
        stride = int(rng.integers(1, 3)) if hr.shape[0] >= 2 * WINDOW else 1
        first = int(rng.integers(0, hr.shape[0] - stride * (WINDOW - 1)))
        frames = list(range(first, first + stride * WINDOW, stride))
        if rng.random() < 0.5:
            frames.reverse()
        y = int(rng.integers(0, hr.shape[-2] - crop + 1))
        x = int(rng.integers(0, hr.shape[-1] - crop + 1))
        pick = (frames, slice(None), slice(y, y + crop), slice(x, x + crop))
        h, l = hr[pick], lr[pick]
        if rng.random() < 0.5:
            h, l = h.flip(-1), l.flip(-1)
        hrs.append(h)
        lrs.append(l)
    return torch.cat(hrs), torch.cat(lrs)


def train_diffusion(sequences, context: torch.Tensor, budget: Budget, seed: int):
    rng = np.random.default_rng(seed + 3)
    generator = torch.Generator().manual_seed(seed + 3)
    unet, lr_encoder = model.build_denoiser(seed + 3)
    params = list(unet.parameters()) + list(lr_encoder.parameters())
    ema = [p.detach().clone() for p in params]
    optimizer = torch.optim.AdamW(params, lr=budget.lr, weight_decay=0.0)
    alphas = base_schedule()["alphas_cumprod"]
    phases = [(budget.diffusion_small_steps, budget.diffusion_small_crop, budget.diffusion_small_batch),
              (budget.diffusion_steps, budget.diffusion_crop, budget.diffusion_batch)]
    total = sum(p[0] for p in phases)
    step = 0
    losses = []
    for steps, crop, windows in phases:
        for _ in range(steps):
            _set_lr(optimizer, budget.lr, step, total)
            hr, lr = latent_batch(sequences, windows, crop, rng)
            t = torch.from_numpy(rng.integers(0, TRAIN_TIMESTEPS, size=windows)).repeat_interleave(WINDOW)
            eps = torch.randn(hr.shape, generator=generator)
            a = alphas[t].view(-1, 1, 1, 1)
            x_t = a.sqrt() * hr + (1 - a).sqrt() * eps
            pred = unet(x_t, t, context, lr_encoder(lr, t), num_frames=WINDOW)
            loss = F.mse_loss(pred, eps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            with torch.no_grad():
                decay = min(budget.ema, (1 + step) / (10 + step))
                for e, p in zip(ema, params):
                    e.lerp_(p.detach(), 1 - decay)
            losses.append(loss.item())
            step += 1
            if step % 100 == 0 or step == total:
                print(f"  diffusion step {step}/{total} ({crop}x{crop} latent, {windows} windows): "
                      f"eps MSE {np.mean(losses[-100:]):.4f}", flush=True)
    with torch.no_grad():
        for e, p in zip(ema, params):
            p.copy_(e)
    return unet.eval().requires_grad_(False), lr_encoder.eval().requires_grad_(False)


def _set_lr(optimizer, peak: float, step: int, total: int, warmup: int = 50) -> None:
    """Linear warm-up, then cosine decay to 2 % of the peak."""
    if step < warmup:
        lr = peak * (step + 1) / warmup
    else:
        progress = (step - warmup) / max(1, total - warmup)
        lr = peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))
    for group in optimizer.param_groups:
        group["lr"] = lr


# ---------------------------------------------------------------------------------------------
# 4. Evaluation on held-out frames
# ---------------------------------------------------------------------------------------------

EVAL_TIMESTEPS = (20, 100, 250, 500, 750, 950)


def heldout_sample() -> tuple[np.ndarray, np.ndarray]:
    """5 held-out frames (256x256 HR, 64x64 LR) of the benchmark clip: the test's sample too."""
    return data.benchmark_clip(WINDOW, (64, 64), start=data.BENCHMARK_START, origin=(200, 380))


def denoising_errors(nets: dict, hr: np.ndarray, lr: np.ndarray, seed: int = 0, draws: int = 2) -> dict:
    """eps MSE of the network and of the trivial predictors at :data:`EVAL_TIMESTEPS` (mean over draws)."""
    generator = torch.Generator().manual_seed(seed)
    z_hr = encode(nets["first_stage"], hr, False, generator)
    z_lr = encode(nets["first_stage"], upsampled_lr(lr), True, generator)
    alphas = base_schedule()["alphas_cumprod"]
    rows = {}
    with torch.no_grad():
        for t_value in EVAL_TIMESTEPS:
            t = torch.tensor([t_value])
            a = alphas[t_value]
            sums = np.zeros(3)
            for _ in range(draws):
                eps = torch.randn(z_hr.shape, generator=generator)
                x_t = a.sqrt() * z_hr + (1 - a).sqrt() * eps
                pred = nets["unet"](x_t, t, nets["context"], nets["lr_encoder"](z_lr, t), num_frames=WINDOW)
                from_lr = (x_t - a.sqrt() * z_lr) / (1 - a).sqrt()
                sums += [F.mse_loss(pred, eps).item(), eps.square().mean().item(), F.mse_loss(from_lr, eps).item()]
            rows[t_value] = dict(zip(("model", "eps_zero", "x0_lr"), (sums / draws).tolist()))
    return rows


def print_errors(rows: dict) -> None:
    print(f"  {'t':>5}{'model':>10}{'eps = 0':>10}{'x0 = LR':>10}")
    for t_value, row in rows.items():
        print(f"  {t_value:>5}{row['model']:>10.4f}{row['eps_zero']:>10.4f}{row['x0_lr']:>10.4f}")
    means = {k: float(np.mean([r[k] for r in rows.values()])) for k in ("model", "eps_zero", "x0_lr")}
    print(f"  {'mean':>5}{means['model']:>10.4f}{means['eps_zero']:>10.4f}{means['x0_lr']:>10.4f}")


# ---------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: least CPU time per step)")
    parser.add_argument("--work", type=pathlib.Path, default=None, help="keep each stage's result here")
    parser.add_argument("--from-stage", choices=STAGES, default=STAGES[0])
    parser.add_argument("--budget", type=float, default=1.0, help="scale every phase's step count (tests: 0.01)")
    parser.add_argument("--no-save", action="store_true", help="do not overwrite the shipped weights")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budget = Budget().scaled(args.budget)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}; seed {args.seed}; {budget}")
    start = STAGES.index(args.from_stage)
    work = args.work
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    clock = Clock(work)
    sources = Sources() if start < 2 else None
    text = model.build_text_encoder(args.seed)
    context = model.empty_context(text)

    with clock.stage("autoencoder", run=start <= 0):
        if start <= 0:
            vae = train_autoencoder(sources, budget, args.seed)
            if work is not None:
                torch.save(vae.state_dict(), work / "autoencoder.pt")
        else:
            vae = model.build_autoencoder(args.seed)
            vae.load_state_dict(torch.load(work / "autoencoder.pt", weights_only=True))
            vae.eval().requires_grad_(False)
        first_stage = model.first_stage_from(vae).eval().requires_grad_(False)
    with clock.stage("latents", run=start <= 1):
        if start <= 1:
            sequences = make_latents(first_stage, sources, args.seed)
            if work is not None:
                torch.save(sequences, work / "latents.pt")
        else:
            sequences = torch.load(work / "latents.pt", weights_only=True)
    with clock.stage("diffusion", run=start <= 2):
        if start <= 2:
            unet, lr_encoder = train_diffusion(sequences, context, budget, args.seed)
            if work is not None:
                torch.save({"unet": unet.state_dict(), "lr_encoder": lr_encoder.state_dict()}, work / "diffusion.pt")
        else:
            unet, lr_encoder = model.build_denoiser(args.seed)
            state = torch.load(work / "diffusion.pt", weights_only=True)
            unet.load_state_dict(state["unet"])
            lr_encoder.load_state_dict(state["lr_encoder"])
            unet.eval().requires_grad_(False)
            lr_encoder.eval().requires_grad_(False)
    with clock.stage("evaluate", run=start <= 3):
        hr, lr = heldout_sample()
        trained = {"unet": unet, "lr_encoder": lr_encoder, "first_stage": first_stage, "context": context}
        rows = denoising_errors(trained, hr, lr)
        print("  held-out eps MSE, trained weights (float32):")
        print_errors(rows)
        info = {"seed": args.seed, "threads": args.threads, "torch": torch.__version__,
                "budget": dataclasses.asdict(budget), "cpu_minutes": round(clock.total_cpu / 60, 1),
                "wall_minutes": round(clock.total_wall / 60, 1), "train_clips": list(data.TRAIN_CLIPS),
                "train_images": list(data.TRAIN_IMAGES), "held_out": data.HELD_OUT_CLIP}
        if not args.no_save:
            model.save(unet, lr_encoder, first_stage, text, vae, info)
            shipped = model.load()
            rows = denoising_errors(shipped, hr, lr)
            print(f"  held-out eps MSE, shipped weights ({model.DIFFUSION_FILE.name}, fp16, through the pack's loaders):")
            print_errors(rows)
            np.savez_compressed(model.WEIGHTS_DIR / "heldout_sample.npz", hr=hr, lr=lr)
    print("\nstage          wall min   CPU min")
    for name, wall, cpu in clock.rows:
        print(f"{name:<14}{wall / 60:>9.1f}{cpu / 60:>10.1f}")
    print(f"{'total':<14}{clock.total_wall / 60:>9.1f}{clock.total_cpu / 60:>10.1f}")
    if not args.no_save:
        print(json.dumps(info))


if __name__ == "__main__":
    main()
