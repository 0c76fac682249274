"""Default mode: MGLD-VSR over a whole clip of any length, without the official script's seams.

Differences from the official path (``official.py``), each for a visible reason:
* temporal windows and latent tiles whose borders move at every denoising step (``partition.py``),
  so no border persists and every frame and latent pixel is denoised once per step (about a third
  of the official UNet work at 1080p). The first few steps (``START_FRACTION``) lay out the
  coarse picture from near-pure noise, so a tile border there persists to the end
  (benchmarks/seams.py measures it): they blend tiles overlapping by a quarter. The last few
  (``FINISH_FRACTION``) fix the final detail, which no later step can smooth: they blend
  tiles overlapping by half (their windows keep moving). A non-zero overlap option selects fixed
  blended windows/tiles at every step instead;
* the motion guidance acts on the whole clip at once (window seams included) with the paper's
  frame/flow pairing, and never across a scene cut; windows restart at cuts;
* exactly N frames out for N in: short shots are padded by mirroring inside a window only;
* one noise stream for the clip (a CPU generator), so the noise does not depend on tiling or device;
* the colour fix runs on whole frames after decoding, not per tile.
The two halves match the sampler and decoder nodes: :func:`sample_video` and :func:`decode_frames`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterator, Optional

import torch

from ...models.placement import compute_device
from ..memory.budget import fit_decode, fit_sampling
from .checkpoint import SamplingCheckpoint
from ..workers.executor import LOCAL, Executor
from ..frames import LRPlan
from .guidance import GUIDANCE_PAIRS_PER_CHUNK, clip_guidance_step
from ..hooks import Hooks, ProgressCounter
from ..motion.field import MotionField
from ..numerics import DIFFUSION_LOADER, VIDEO_VAE_LOADER, check_finite
from ..memory.oom import is_out_of_memory, release_cached_memory, smaller_tile
from ..official import LATENT_SCALE, color_fix
from .denoise import predict_eps
from .schedule import ddpm_step, predict_x0, q_sample_respace, respaced_schedule
from .windows import Window, plan_windows, shifted_windows


#: Shares of the denoising steps that start the sampling with Gaussian-blended tiles overlapping
#: by a quarter (rounded to the nearest step: none below 13 steps) and end it with tiles
#: overlapping by half (rounded up: at least one), when the shifted partitions
#: are used: 2 + 4 of 50 steps. The finishing share is the smallest with which the trained
#: stand-in's quality benchmark (benchmarks/quality.py --quick, 13 steps) leaves no stronger seam
#: than the fixed Gaussian grid: one finishing step of 13 left a line of 1.33, two left 1.11 (grid:
#: 1.23); more blended start steps did not help (1.38).
START_FRACTION = 0.04
FINISH_FRACTION = 0.08
#: Frames shared by neighbouring windows in the finishing steps (0: the shifted disjoint windows of
#: every other step). 0: sharing 1 frame cost 2 % more UNet work for no gain on the stand-in
#: (quality.py --quick: seam 1.11 either way, border flicker 0.99 shifted vs 1.01 shared, warping
#: error 15.14 both), and made the default mode costlier than the official one at 128 -> 512.
FINISH_WINDOW_OVERLAP = 0
#: Latent tile overlap of the finishing and the starting steps, as a share of the tile (whole 8-px units).
FINISH_TILE_OVERLAP = 0.5
START_TILE_OVERLAP = 0.25
#: Frames shared by neighbouring temporal windows of the decoder, whose temporal layers mix clips of
#: ``video_vae.num_frames`` (5); shared frames are blended with triangular weights. None, as in the
#: official script: sharing 2 frames decoded each frame 5/3 times and left no less flicker at the
#: decoder's window borders (benchmarks/quality.py --decoder, 20 frames: border flicker 1.05 with
#: disjoint windows, 1.06 with 2 shared frames, 1.04 at the same pairs with 2 shared; warping
#: error 16.74 against 16.69).
DECODE_WINDOW_OVERLAP = 0
#: Where the clip-long sampling state lives (latents, LR latents, noise prediction sums, motion):
#: host RAM, so accelerator memory does not grow with the clip; windows visit the device.
STATE_DEVICE = torch.device("cpu")


@dataclasses.dataclass(frozen=True)
class SamplingOptions:
    steps: int = 50
    strength: float = 10.0  # motion guidance; 0 disables it
    seed: int = 0
    window: int = 5  # frames per temporal window (the model was trained on 5)
    window_overlap: int = 0  # 0: disjoint windows shifted every step; >0: fixed windows blended
    tile: int = 64  # latent tile side (8 latent px = 64 image px)
    tile_overlap: int = 0  # 0: disjoint tiles shifted every step; >0: fixed Gaussian-blended grid
    tiles_per_batch: int = 1
    memory_budget_gb: float = 0.0  # cap on estimated accelerator memory; 0 = no cap

    def validate(self, latent_size: tuple[int, int]) -> None:
        if not 1 <= int(self.steps) <= 1000:
            raise ValueError(f"steps must be between 1 and 1000, got {self.steps}")
        if not (self.strength >= 0 and self.strength < float("inf")):
            raise ValueError(f"guidance strength must be >= 0, got {self.strength}")
        if self.window < 2 or not 0 <= self.window_overlap < self.window:
            raise ValueError(f"window {self.window} with overlap {self.window_overlap}: need window >= 2 and "
                             f"0 <= overlap < window")
        if self.tile < 8 or self.tile % 8:
            raise ValueError(f"latent tile size must be a multiple of 8 (>= 8), got {self.tile}")
        if not 0 <= self.tile_overlap < self.tile:
            raise ValueError(f"tile overlap must be in [0, tile size), got {self.tile_overlap}")
        if self.tile > min(latent_size):
            raise ValueError(f"latent tile size {self.tile} is larger than the latent grid {latent_size[0]}x{latent_size[1]}; "
                             f"use a tile of at most {min(latent_size) - min(latent_size) % 8}")
        if self.tiles_per_batch < 1:
            raise ValueError("tiles_per_batch must be at least 1")
        if not (0 <= self.memory_budget_gb < float("inf")):
            raise ValueError(f"memory budget must be >= 0 GB (0 = no cap), got {self.memory_budget_gb}")


@dataclasses.dataclass
class VideoLatents:
    """Sampler output of default mode: clean diffusion latents of every frame on the plan's latent grid."""

    latents: torch.Tensor  # [N, 4, h, w], 0.18215-scaled
    plan: LRPlan
    cuts: torch.Tensor  # [N-1] bool


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


def sample_video(frames: torch.Tensor, motion: MotionField, plan: LRPlan, *, unet, lr_encoder, first_stage,
                 context: torch.Tensor, options: SamplingOptions = SamplingOptions(),
                 hooks: Optional[Hooks] = None, executor: Executor = LOCAL,
                 checkpoint: Optional[SamplingCheckpoint] = None) -> VideoLatents:
    """Motion-guided sampling of all frames: windows blended per step, guidance over the whole clip.

    ``executor`` computes the VAE-encode chunks and each step's window predictions (here, or spread
    over devices: the same result). ``checkpoint`` saves the sampling state every few steps and
    resumes from the last saved step of an interrupted run with the same inputs and settings.
    """
    check_frames(frames)
    n = frames.shape[0]
    latent_size = plan.latent_size
    options.validate(latent_size)
    if motion.num_frames != n:
        raise ValueError(f"the flow covers {motion.num_frames} frames but the clip has {n}: "
                         "compute the flow from the same frames")
    if tuple(motion.size) != tuple(latent_size):
        raise ValueError(f"the motion field is {tuple(motion.size)} but the latent grid is {tuple(latent_size)}")
    encode_chunk = None
    if options.memory_budget_gb > 0:
        fit = fit_sampling(unet, lr_encoder, first_stage, plan, n, options, options.memory_budget_gb)
        options, encode_chunk = fit.options, fit.encode_chunk
        (hooks or Hooks(message=lambda _: None)).notice(
            f"memory budget {options.memory_budget_gb:g} GB: {options.tile}-px latent tiles, {encode_chunk} frame(s) "
            f"per VAE encode, estimated peak {fit.peak_bytes / 1e9:.2f} GB")
    schedule = respaced_schedule(options.steps)
    generator = torch.Generator().manual_seed(int(options.seed))
    device = compute_device(unet)
    motion = motion.to(STATE_DEVICE)
    plans = [windows_at(step, schedule.steps, n, options, motion.cuts) for step in range(schedule.steps)]
    progress = ProgressCounter(hooks, sum(len(p) for p in plans), "sampling")
    run_key = checkpoint.run_key(frames, motion.cuts, plan, options) if checkpoint is not None else ""
    saved = checkpoint.load(run_key, hooks) if checkpoint is not None else None
    if saved is None:
        lr_latent = encode_lr_latents(first_stage, frames, plan, generator, encode_chunk, executor)
        x = q_sample_respace(schedule, lr_latent, torch.randn(lr_latent.shape, generator=generator))
        first_step = 0
    else:
        x, lr_latent, first_step = saved.x, saved.lr_latent, saved.step
        generator.set_state(saved.generator_state)
        progress.done = sum(len(p) for p in plans[:first_step])
    networks = {"unet": unet, "lr_encoder": lr_encoder, "context": context}
    current = options
    for step, j in enumerate(reversed(range(schedule.steps))):
        if step < first_step:
            continue
        done = progress.done
        while True:
            try:
                eps = _step_eps(executor, networks, x, lr_latent, schedule, step, j, plans[step], current, progress)
                break
            except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are retried
                if not is_out_of_memory(exc):
                    raise
                current = _fallback(current, exc, device, hooks)
                progress.done = done
        noise = torch.randn(x.shape, generator=generator)
        x = ddpm_step(schedule, j, x, eps, noise)
        x, _ = clip_guidance_step(x, schedule, j, motion, options.strength, device=device,
                                  pairs_per_chunk=GUIDANCE_PAIRS_PER_CHUNK, executor=executor)
        check_finite(x, f"sampling step {step + 1} of {schedule.steps}", next(unet.parameters()).dtype,
                     DIFFUSION_LOADER)
        if checkpoint is not None and checkpoint.due(step, schedule.steps):
            checkpoint.save(run_key, step + 1, x, lr_latent, generator.get_state())
    return VideoLatents(x, plan, motion.cuts.cpu())


@dataclasses.dataclass(frozen=True)
class WindowStep:
    """A unit of a denoising step: one temporal window's slices of the clip state and where its tiles fall."""

    x: torch.Tensor  # [T,4,h,w] noisy latents of the window's frames
    lr_latent: torch.Tensor  # [T,4,h,w]
    t_model: int
    tile: int
    tile_overlap: Optional[int]  # None: the shifted disjoint tiles of ``step``
    tiles_per_batch: int
    step: int
    between_tiles: Optional[Callable[[], None]] = None  # Cancel check before each tile (in this process only)


def window_eps(networks, unit: WindowStep) -> torch.Tensor:
    """Tiled noise prediction of one window at one step, in host RAM."""
    unet = networks["unet"]
    device = compute_device(unet)
    return predict_eps(unet, networks["lr_encoder"], unit.x.to(device), unit.lr_latent.to(device), unit.t_model,
                       networks["context"], unit.tile, unit.tile_overlap or 0, unit.tiles_per_batch,
                       num_frames=unit.x.shape[0], shift_step=unit.step if unit.tile_overlap is None else None,
                       between_tiles=unit.between_tiles).to(STATE_DEVICE)


def _step_eps(executor: Executor, networks: dict, x, lr_latent, schedule, step: int, j: int, windows: list[Window],
              options: SamplingOptions, progress: ProgressCounter) -> torch.Tensor:
    """The clip's noise prediction at one step: every window's tiled prediction, blended by window weights.

    ``x`` and ``lr_latent`` stay where they are (host RAM); each window's slices go to the executor.
    """
    t_model = schedule.model_timestep(j)
    eps_sum = torch.zeros_like(x)
    weight_sum = torch.zeros(x.shape[0], device=x.device)
    tile_overlap = tile_overlap_at(step, schedule.steps, options)
    # Cancel between tiles reaches only this process's own work (remote workers are stopped between windows).
    between_tiles = progress.hooks.interrupt_point if progress.hooks is not None and executor is LOCAL else None
    index_of = [torch.tensor(window.frames, device=x.device) for window in windows]
    units = (WindowStep(x[index], lr_latent[index], t_model, options.tile, tile_overlap, options.tiles_per_batch, step,
                        between_tiles) for index in index_of)
    for window, index, eps in zip(windows, index_of, executor.map(window_eps, units, networks)):
        x0 = predict_x0(schedule, j, x[index], eps) if progress.wants_preview else None
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


def finishing(step: int, total: int) -> bool:
    """Whether denoising ``step`` (0 = first of ``total``) is one of the blended finishing steps."""
    return step >= total - math.ceil(FINISH_FRACTION * total)


def starting(step: int, total: int) -> bool:
    """Whether denoising ``step`` is one of the first steps, whose tiles are blended (finishing wins)."""
    return step < math.floor(START_FRACTION * total + 0.5) and not finishing(step, total)


def windows_at(step: int, total: int, num_frames: int, options: SamplingOptions,
               cuts: torch.Tensor | None) -> list[Window]:
    """The temporal windows of denoising ``step``: shifted when the overlap is 0, except when finishing."""
    if options.window_overlap > 0:
        return plan_windows(num_frames, options.window, options.window_overlap, cuts)
    if finishing(step, total) and FINISH_WINDOW_OVERLAP > 0:
        return plan_windows(num_frames, options.window, FINISH_WINDOW_OVERLAP, cuts)
    return shifted_windows(num_frames, options.window, step, cuts)


def tile_overlap_at(step: int, total: int, options: SamplingOptions) -> int | None:
    """Latent tile overlap of denoising ``step``; ``None`` means the shifted disjoint tiles."""
    if options.tile_overlap > 0:
        return options.tile_overlap
    if finishing(step, total):
        return max(1, int(options.tile * FINISH_TILE_OVERLAP))
    if starting(step, total):
        return max(8, int(options.tile * START_TILE_OVERLAP) // 8 * 8)  # in whole 8-px units
    return None


def feather(length: int, ramp: int, start_edge: bool, end_edge: bool) -> torch.Tensor:
    """1-D blending weights of a tile: linear ramps of ``ramp`` pixels on sides shared with a neighbour."""
    pos = torch.arange(length, dtype=torch.float32)
    w = torch.ones(length)
    if ramp > 0 and not start_edge:
        w = torch.minimum(w, (pos + 1) / (ramp + 1))
    if ramp > 0 and not end_edge:
        w = torch.minimum(w, (length - pos) / (ramp + 1))
    return w


def decode_window(video_vae, z: torch.Tensor, lr: torch.Tensor, dec_w: float, tile: int = 0, overlap: int = 8,
                  between_tiles=None) -> torch.Tensor:
    """CFW-decode one temporal window ``z [T,4,h,w]`` against its LR frames ``lr [T,3,8h,8w]``.

    ``tile`` (latent pixels, 0 = whole frame) splits the frame into spatial tiles of at most that side
    that keep the whole temporal window, each decoded with the encoder features of its own LR area
    and feather-blended, so memory is bounded at any resolution. The tiles are fitted to the frame
    (``fitted_origins``): each pixel is decoded once, plus the ``overlap`` feathered between tiles.
    ``between_tiles()`` runs before each tile (interrupt check).
    """
    h, w = z.shape[-2:]
    if tile <= 0 or (tile >= h and tile >= w):
        _, features = video_vae.encode(lr)
        return video_vae.decode(z / LATENT_SCALE, features, dec_w).float()
    from .tiling import fitted_origins

    (th, ys), (tw, xs) = fitted_origins(h, tile, overlap), fitted_origins(w, tile, overlap)
    out = torch.zeros(z.shape[0], 3, 8 * h, 8 * w, device=z.device)
    total = torch.zeros(1, 1, 8 * h, 8 * w, device=z.device)
    for y in ys:
        for x in xs:
            if between_tiles is not None:
                between_tiles()
            _, features = video_vae.encode(lr[..., 8 * y:8 * (y + th), 8 * x:8 * (x + tw)])
            part = video_vae.decode(z[..., y:y + th, x:x + tw] / LATENT_SCALE, features, dec_w).float()
            weight = torch.outer(feather(8 * th, 8 * overlap, y == 0, y + th == h),
                                 feather(8 * tw, 8 * overlap, x == 0, x + tw == w)).to(z.device)
            area = (Ellipsis, slice(8 * y, 8 * (y + th)), slice(8 * x, 8 * (x + tw)))
            out[area] += part * weight
            total[area] += weight
    return out / total


@dataclasses.dataclass(frozen=True)
class DecodeWindow:
    """A unit of the decoder: one temporal window's latents and prepared LR frames."""

    z: torch.Tensor  # [T,4,h,w]
    lr: torch.Tensor  # [T,3,8h,8w]
    dec_w: float
    tile: int  # latent pixels, 0 = whole frames
    between_tiles: Optional[Callable[[], None]] = None  # Cancel check before each tile (in this process only)


def decode_window_unit(networks, unit: DecodeWindow) -> tuple[torch.Tensor, int]:
    """``(decoded window, tile used)``: an out-of-memory error is retried with smaller tiles, which the
    caller then keeps for the following windows."""
    video_vae = networks["video_vae"]
    device = compute_device(video_vae)
    dtype = next(video_vae.parameters()).dtype
    tile = unit.tile
    while True:
        try:
            return decode_window(video_vae, unit.z.to(device, dtype), unit.lr.to(device, dtype), unit.dec_w, tile,
                                 between_tiles=unit.between_tiles), tile
        except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are retried
            if not is_out_of_memory(exc):
                raise
            release_cached_memory(device)
            smaller = smaller_tile(tile if tile > 0 else max(unit.z.shape[-2:]))
            if smaller is None:
                raise MemoryError(f"out of memory on {device} decoding even with {8 * tile}-px tiles: free memory "
                                  "or decode on a smaller clip") from exc
            tile = smaller


def decode_frames(latents: VideoLatents, frames: torch.Tensor, video_vae, *, dec_w: float = 1.0,
                  colorfix: str = "adain", overlap: int | None = None, tile: int = 0, memory_budget_gb: float = 0.0,
                  hooks: Optional[Hooks] = None, executor: Executor = LOCAL) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(index, frame [H',W',3] float in [0,1])`` in order, as soon as each frame is final.

    Decoding uses the video VAE's own window length, windows sharing ``overlap`` frames
    (:data:`DECODE_WINDOW_OVERLAP` by default) blended with triangular weights; at most one window of frames is held, so long clips stream. ``tile`` is
    the spatial decode tile in latent pixels (0 = whole frames); with ``memory_budget_gb`` > 0 it
    shrinks until the estimated peak fits. ``executor`` decodes the windows (a few ahead when spread
    over devices); blending and the colour fix happen here, in order.
    """
    plan, z = latents.plan, latents.latents
    n = z.shape[0]
    if frames.shape[0] != n:
        raise ValueError(f"{n} latent frames but {frames.shape[0]} LR frames")
    if tuple(frames.shape[1:3]) != plan.lr_size:
        raise ValueError(f"LR frames are {tuple(frames.shape[1:3])} but the latents were sampled for {plan.lr_size}")
    if not 0.0 <= float(dec_w) <= 1.0:
        raise ValueError(f"CFW fusion weight w must be in [0, 1], got {dec_w}")
    if not (0 <= memory_budget_gb < float("inf")):
        raise ValueError(f"memory budget must be >= 0 GB (0 = no cap), got {memory_budget_gb}")
    if memory_budget_gb > 0:
        tile, _ = fit_decode(video_vae, plan, tile, memory_budget_gb)
    device = compute_device(video_vae)
    dtype = next(video_vae.parameters()).dtype
    window = video_vae.num_frames
    overlap = DECODE_WINDOW_OVERLAP if overlap is None else overlap
    windows = plan_windows(n, window, min(overlap, window - 1), latents.cuts)
    progress = ProgressCounter(hooks, len(windows), "decoding")
    pending: dict[int, list] = {}
    next_frame = 0
    prepared = [None] * len(windows)
    between_tiles = hooks.interrupt_point if hooks is not None and executor is LOCAL else None

    def units():
        for k, win in enumerate(windows):
            prepared[k] = plan.prepare(frames[list(win.frames)], device).to(dtype)
            yield DecodeWindow(z[list(win.frames)], prepared[k], dec_w, tile, between_tiles)

    for k, (win, (decoded, used)) in enumerate(zip(windows, executor.map(decode_window_unit, units(),
                                                                         {"video_vae": video_vae}))):
        lr, prepared[k] = prepared[k], None
        if used != tile:  # ran out of memory: smaller tiles from now on
            tile = used
            (hooks or Hooks()).notice(f"out of memory on {device}: decoding with {8 * tile}-px tiles from now on")
        check_finite(decoded, "CFW decode", dtype, VIDEO_VAE_LOADER)
        for pos, (f, wt) in enumerate(zip(win.frames, win.weights)):
            if wt == 0:
                continue
            acc = pending.setdefault(f, [0.0, 0.0, lr[pos]])
            acc[0] = acc[0] + decoded[pos] * wt
            acc[1] += wt
        progress.step()
        horizon = min(windows[k + 1].frames) if k + 1 < len(windows) else n
        while next_frame < horizon:
            total, weight, lr_frame = pending.pop(next_frame)
            yield next_frame, _finish(total / weight, lr_frame.float(), plan, colorfix)
            next_frame += 1


def _finish(frame: torch.Tensor, lr_frame: torch.Tensor, plan: LRPlan, colorfix: str) -> torch.Tensor:
    """Colour-fix the whole frame against its LR frame, map to [0, 1], crop the padding away and
    resize the picture to exactly ``plan.output_size`` (when a short LR side was upsampled further,
    or a fractional scale truncated the working size)."""
    h, w = plan.upsampled
    frame = color_fix(colorfix, frame[None, :, :h, :w], lr_frame[None, :, :h, :w])
    image = ((frame + 1.0) / 2.0).clamp(0.0, 1.0)
    if (h, w) != plan.output_size:
        image = torch.nn.functional.interpolate(image, size=plan.output_size, mode="bicubic",
                                                align_corners=False).clamp(0.0, 1.0)
    return image[0].permute(1, 2, 0).cpu()


def decode_video(latents: VideoLatents, frames: torch.Tensor, video_vae, **kwargs) -> torch.Tensor:
    """All frames of :func:`decode_frames` as one ``[N,H',W',3]`` float tensor."""
    return torch.stack([frame for _, frame in decode_frames(latents, frames, video_vae, **kwargs)])
