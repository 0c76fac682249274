"""Default mode: MGLD-VSR over a whole clip of any length, without the official script's seams.

:func:`sample_video` executes a :class:`SamplingPlan` (``plan.py``), which says for every step where the
windows and tiles fall; the loop itself is the paper's: denoise, DDPM step, motion guidance. Differences
from the official path (``official.py``), each for a visible reason:
* temporal windows and latent tiles whose borders move at every denoising step (``partition.py``),
  so no border persists and every frame and latent pixel is denoised once per step (about a third
  of the official UNet work at 1080p); the first and last few steps blend tiles (``plan.py`` says why);
* the motion guidance acts on the whole clip at once (window seams included) with the paper's
  frame/flow pairing, and never across a scene cut; windows restart at cuts;
* exactly N frames out for N in: short shots are padded by mirroring inside a window only;
* one noise stream for the clip (a CPU generator), so the noise does not depend on tiling or device.
The decoder node's half is ``decoding/cfw.py``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import torch

from ...models.placement import compute_device
from ..defaults import LATENT_SCALE
from ..frames import LRPlan
from ..hooks import Hooks, ProgressCounter
from ..memory.budget import fit_sampling
from ..memory.oom import is_out_of_memory, release_cached_memory, smaller_tile
from ..motion.field import MotionField
from ..numerics import DIFFUSION_LOADER, check_finite
from ..workers.executor import LOCAL, Executor
from .checkpoint import SamplingCheckpoint
from .denoise import predict_eps
from .guidance import GUIDANCE_PAIRS_PER_CHUNK, clip_guidance_step
from .plan import SamplingOptions, SamplingPlan, StepPlan
from .schedule import ddpm_step, predict_x0, q_sample_respace
from .tiling import TileLayout

__all__ = ["SamplingOptions", "SamplingPlan", "VideoLatents", "sample_video", "encode_lr_latents"]

#: Where the clip-long sampling state lives (latents, LR latents, noise prediction sums, motion):
#: host RAM, so accelerator memory does not grow with the clip; windows visit the device.
STATE_DEVICE = torch.device("cpu")


@dataclasses.dataclass
class VideoLatents:
    """Sampler output of default mode: clean diffusion latents of every frame on the plan's latent grid."""

    latents: torch.Tensor  # [N, 4, h, w], 0.18215-scaled
    plan: LRPlan
    cuts: torch.Tensor  # [N-1] bool: where the decoder's windows restart (hard cuts, transition ends)


def check_frames(frames: torch.Tensor) -> None:
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected RGB frames [N,H,W,3], got shape {tuple(frames.shape)}")
    if frames.shape[0] < 1:
        raise ValueError("the clip has no frames")
    if frames.dtype != torch.uint8 and not torch.isfinite(frames).all():
        raise ValueError("the frames contain NaN or infinite values")


@dataclasses.dataclass(frozen=True)
class EncodeChunk:
    """A unit of the LR encoding: some frames and their share of the clip's posterior noise."""

    frames: torch.Tensor  # [c,H,W,3]
    draws: torch.Tensor  # [c,4,h,w]
    plan: LRPlan


def lr_latents_of_chunk(networks, unit: EncodeChunk) -> torch.Tensor:
    """Scaled posterior samples of one chunk, in host RAM."""
    first_stage = networks["first_stage"]
    device = compute_device(first_stage)
    dtype = next(first_stage.parameters()).dtype
    posterior = first_stage.encode(unit.plan.prepare(unit.frames, device).to(dtype))
    sample = posterior.sample(noise=unit.draws.to(device))
    check_finite(sample, "VAE encode (sampler)", dtype, DIFFUSION_LOADER)
    return (LATENT_SCALE * sample.float()).to(STATE_DEVICE)


def encode_lr_latents(first_stage, frames: torch.Tensor, plan: LRPlan, generator: torch.Generator,
                      chunk: int | None = None, executor: Executor = LOCAL) -> torch.Tensor:
    """Scaled LR latents (posterior samples) of every frame, encoded ``chunk`` frames at a time.

    By default as many frames as fit in about one megapixel (one frame at 1080p): the encoder's
    activations at full output resolution are the largest of the whole pipeline.
    """
    h, w = plan.latent_size
    if chunk is None:
        chunk = max(1, min(8, 2 ** 20 // (plan.padded[0] * plan.padded[1])))
    draws = torch.randn((frames.shape[0], 4, h, w), generator=generator)  # one draw for the clip: chunking-independent
    units = (EncodeChunk(frames[start:start + chunk], draws[start:start + chunk], plan)
             for start in range(0, frames.shape[0], chunk))
    return torch.cat(list(executor.map(lr_latents_of_chunk, units, {"first_stage": first_stage})))


def sample_video(frames: torch.Tensor, motion: MotionField, lr_plan: LRPlan, *, unet, lr_encoder, first_stage,
                 context: torch.Tensor, options: SamplingOptions = SamplingOptions(),
                 hooks: Optional[Hooks] = None, executor: Executor = LOCAL,
                 checkpoint: Optional[SamplingCheckpoint] = None) -> VideoLatents:
    """Motion-guided sampling of all frames: the plan's windows and tiles per step, guidance over the whole clip.

    ``executor`` computes the VAE-encode chunks and each step's window predictions (here, or spread
    over devices: the same result). ``checkpoint`` saves the sampling state every few steps and
    resumes from the last saved step of an interrupted run with the same inputs and settings.
    """
    options, encode_chunk = _checked_options(frames, motion, lr_plan, options, unet, lr_encoder, first_stage, hooks)
    # Windows restart at motion.splits (hard cuts, transition ends); guidance skips every pair in motion.cuts.
    plan = SamplingPlan.create(options, frames.shape[0], lr_plan.latent_size, motion.splits)
    device, motion = compute_device(unet), motion.to(STATE_DEVICE)
    progress = ProgressCounter(hooks, plan.window_visits, "sampling")
    boundaries = motion.cuts if motion.window_cuts is None else torch.cat([motion.cuts, motion.window_cuts])
    run_key = checkpoint.run_key(frames, boundaries, lr_plan, options) if checkpoint is not None else ""
    saved = checkpoint.load(run_key, hooks) if checkpoint is not None else None
    generator = torch.Generator().manual_seed(int(options.seed))
    if saved is None:
        lr_latent = encode_lr_latents(first_stage, frames, lr_plan, generator, encode_chunk, executor)
        x, first = q_sample_respace(plan.schedule, lr_latent, torch.randn(lr_latent.shape, generator=generator)), 0
    else:
        x, lr_latent, first = saved.x, saved.lr_latent, saved.step
        generator.set_state(saved.generator_state)
        progress.done = sum(len(step.windows) for step in plan.steps[:first])
    networks = {"unet": unet, "lr_encoder": lr_encoder, "context": context}
    for index in range(first, len(plan.steps)):
        eps, plan = _denoise_with_retry(executor, networks, x, lr_latent, plan, index, progress, device, hooks)
        step = plan.steps[index]
        x = ddpm_step(plan.schedule, step.j, x, eps, torch.randn(x.shape, generator=generator))
        x, _ = clip_guidance_step(x, plan.schedule, step.j, motion, options.strength, device=device,
                                  pairs_per_chunk=GUIDANCE_PAIRS_PER_CHUNK, executor=executor)
        check_finite(x, f"sampling step {index + 1} of {len(plan.steps)}", next(unet.parameters()).dtype,
                     DIFFUSION_LOADER)
        if checkpoint is not None and checkpoint.due(index, len(plan.steps)):
            checkpoint.save(run_key, index + 1, x, lr_latent, generator.get_state())
    return VideoLatents(x, lr_plan, motion.splits.cpu())


def _checked_options(frames, motion: MotionField, lr_plan: LRPlan, options: SamplingOptions, unet, lr_encoder,
                     first_stage, hooks: Optional[Hooks]) -> tuple[SamplingOptions, Optional[int]]:
    """``(options, frames per VAE encode)`` after checking the inputs agree, fitted to the memory budget if set."""
    check_frames(frames)
    n = frames.shape[0]
    options.validate(lr_plan.latent_size)
    if motion.num_frames != n:
        raise ValueError(f"the flow covers {motion.num_frames} frames but the clip has {n}: "
                         "compute the flow from the same frames")
    if tuple(motion.size) != tuple(lr_plan.latent_size):
        raise ValueError(f"the motion field is {tuple(motion.size)} but the latent grid is {tuple(lr_plan.latent_size)}")
    if options.memory_budget_gb <= 0:
        return options, None
    fit = fit_sampling(unet, lr_encoder, first_stage, lr_plan, n, options, options.memory_budget_gb)
    (hooks or Hooks(message=lambda _: None)).notice(
        f"memory budget {fit.options.memory_budget_gb:g} GB: {fit.options.tile}-px latent tiles, {fit.encode_chunk} "
        f"frame(s) per VAE encode, estimated peak {fit.peak_bytes / 1e9:.2f} GB")
    return fit.options, fit.encode_chunk


@dataclasses.dataclass(frozen=True)
class WindowStep:
    """A unit of a denoising step: one temporal window's slices of the clip state and where its tiles fall."""

    x: torch.Tensor  # [T,4,h,w] noisy latents of the window's frames
    lr_latent: torch.Tensor  # [T,4,h,w]
    t_model: int
    layout: TileLayout
    tiles_per_batch: int
    between_tiles: Optional[Callable[[], None]] = None  # Cancel check before each tile (in this process only)


def window_eps(networks, unit: WindowStep) -> torch.Tensor:
    """Tiled noise prediction of one window at one step, in host RAM."""
    unet = networks["unet"]
    device = compute_device(unet)
    return predict_eps(unet, networks["lr_encoder"], unit.x.to(device), unit.lr_latent.to(device), unit.t_model,
                       networks["context"], unit.layout, unit.tiles_per_batch, num_frames=unit.x.shape[0],
                       between_tiles=unit.between_tiles).to(STATE_DEVICE)


def _denoise_with_retry(executor: Executor, networks: dict, x, lr_latent, plan: SamplingPlan, index: int,
                        progress: ProgressCounter, device: torch.device,
                        hooks: Optional[Hooks]) -> tuple[torch.Tensor, SamplingPlan]:
    """``(eps, plan)`` of step ``index``: out of memory, the step is retried with smaller tiles, which the
    returned plan keeps for the following steps."""
    done = progress.done
    while True:
        try:
            return _step_eps(executor, networks, x, lr_latent, plan, plan.steps[index], progress), plan
        except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are retried
            if not is_out_of_memory(exc):
                raise
            plan = plan.with_options(_fallback(plan.options, exc, device, hooks))
            progress.done = done


def _step_eps(executor: Executor, networks: dict, x, lr_latent, plan: SamplingPlan, step: StepPlan,
              progress: ProgressCounter) -> torch.Tensor:
    """The clip's noise prediction at one step: every window's tiled prediction, blended by window weights.

    ``x`` and ``lr_latent`` stay where they are (host RAM); each window's slices go to the executor.
    """
    eps_sum = torch.zeros_like(x)
    weight_sum = torch.zeros(x.shape[0], device=x.device)
    # Cancel between tiles reaches only this process's own work (remote workers are stopped between windows).
    between_tiles = progress.hooks.interrupt_point if progress.hooks is not None and executor is LOCAL else None
    index_of = [torch.tensor(window.frames, device=x.device) for window in step.windows]
    units = (WindowStep(x[index], lr_latent[index], step.t_model, step.tiles, plan.options.tiles_per_batch,
                        between_tiles) for index in index_of)
    for window, index, eps in zip(step.windows, index_of, executor.map(window_eps, units, networks)):
        x0 = predict_x0(plan.schedule, step.j, x[index], eps) if progress.wants_preview else None
        frame_weights = torch.tensor(window.weights, device=x.device)
        eps_sum.index_add_(0, index, eps * frame_weights.view(-1, 1, 1, 1))
        weight_sum.index_add_(0, index, frame_weights)
        progress.step(x0)
    return eps_sum / weight_sum.view(-1, 1, 1, 1)


def _fallback(options: SamplingOptions, exc: BaseException, device: torch.device,
              hooks: Optional[Hooks]) -> SamplingOptions:
    """Options for retrying a step after running out of memory: one tile per batch, then half-size tiles."""
    release_cached_memory(device)
    if options.tiles_per_batch > 1:
        smaller = dataclasses.replace(options, tiles_per_batch=1)
    else:
        tile = smaller_tile(options.tile)
        if tile is None:
            raise MemoryError(f"out of memory on {device} even with {options.tile}-px latent tiles, one at a time: "
                              "free memory (close other programs or models), use fewer frames per window, or "
                              "a smaller clip") from exc
        smaller = dataclasses.replace(options, tile=tile, tile_overlap=min(options.tile_overlap, tile // 2))
    (hooks or Hooks()).notice(f"out of memory on {device}: retrying the step with {smaller.tile}-px latent tiles, "
                              f"{smaller.tiles_per_batch} per batch")
    return smaller
