"""The official MGLD-VSR inference script, reproduced as functions (``official`` mode).

Non-overlapping 5-frame segments (the tail padded by repeating the last frame), LR upsampling and
+32 padding, flows on the whole padded segment, image tiles of ``vqgantile_size`` with equal-weight
averaging, re-seeding before every image tile, 64/32 latent canvas tiles, CFW decoding and colour
fix per image tile, truncating 8-bit conversion. Every quirk is kept on purpose (reference
README section 9): this mode exists to match the official numbers. It is split where the nodes
split: :func:`official_sample` (sampler node) and :func:`official_decode` (decoder node).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import torch

from ..models.placement import compute_device
from .decoding.colorfix import color_fix
from .defaults import (LATENT_SCALE, OFFICIAL_FUSION_W, OFFICIAL_GUIDANCE_STRENGTH, OFFICIAL_IMAGE_TILE,
                       OFFICIAL_IMAGE_TILE_STRIDE, OFFICIAL_LATENT_TILE, OFFICIAL_LATENT_TILE_OVERLAP, OFFICIAL_SCALE,
                       OFFICIAL_SEED, OFFICIAL_STEPS, OFFICIAL_WINDOW, COLOR_FIX)
from .frames import LRPlan, fit_to_size, patch_starts, to_uint8
from .hooks import Hooks, ProgressCounter
from .motion.field import ClipFlow, MotionField, clip_flows
from .numerics import DIFFUSION_LOADER, VIDEO_VAE_LOADER, check_finite
from .sampling.denoise import predict_eps
from .sampling.guidance import motion_guidance_step
from .sampling.noise import SeededNoise
from .sampling.schedule import RespacedSchedule, ddpm_step, predict_x0, q_sample_respace, respaced_schedule
from .sampling.tiling import blended_layout, gaussian_tile_weights
from .sampling.windows import official_segments


@dataclasses.dataclass
class StepInfo:
    """What a callback learns after each denoising step."""

    step: int  # 0-based count of finished steps
    total: int
    j: int  # respaced index just applied (total-1 .. 0)
    latents: torch.Tensor
    eps: torch.Tensor
    x0: torch.Tensor  # the clean latent predicted at this step (what previews show)


StepCallback = Callable[[StepInfo], None]
#: ``noise(j, like)`` returns the N(0, I) draw of respaced step j, shaped like ``like``.
StepNoise = Callable[[int, torch.Tensor], torch.Tensor]


def sample_canvas(unet, lr_encoder, x_T: torch.Tensor, lr_latent: torch.Tensor, context: torch.Tensor,
                  schedule: RespacedSchedule, noise: StepNoise, *, motion: Optional[MotionField] = None,
                  strength: float = OFFICIAL_GUIDANCE_STRENGTH, tile: int = OFFICIAL_LATENT_TILE,
                  overlap: int = OFFICIAL_LATENT_TILE_OVERLAP, tiles_per_batch: int = 1,
                  callback: Optional[StepCallback] = None,
                  between_tiles: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """Denoise one window ``x_T [T,4,h,w]`` (T frames of one video) to its clean latent: the official
    ``sample_canvas``, one fixed Gaussian-blended tile grid at every step.

    Each step: the tiled noise prediction, one ancestral DDPM step, then one motion-guidance gradient
    step on the flow-warping error. ``motion`` covers the same T frames (``None`` or ``strength == 0``:
    no guidance). Noise is drawn at every step, including the last where it is multiplied by zero, to
    keep replayed draws aligned.
    """
    if x_T.shape != lr_latent.shape:
        raise ValueError(f"start latent {tuple(x_T.shape)} and LR latent {tuple(lr_latent.shape)} differ")
    layout = blended_layout(*x_T.shape[-2:], tile, overlap)
    weights = gaussian_tile_weights(*layout.tiles[0][2:])
    guided = motion is not None and strength > 0 and x_T.shape[0] > 1
    batched = motion.batched() if guided else None
    x = x_T.float()
    total = schedule.steps
    for step, j in enumerate(reversed(range(total))):
        eps = predict_eps(unet, lr_encoder, x, lr_latent, schedule.model_timestep(j), context, layout, tiles_per_batch,
                          weights, between_tiles=between_tiles)
        x0 = predict_x0(schedule, j, x, eps) if callback is not None else None
        x = ddpm_step(schedule, j, x, eps, noise(j, x))
        if guided:
            x = motion_guidance_step(x, schedule, j, *batched, strength=strength)
        if callback is not None:
            callback(StepInfo(step, total, j, x, eps, x0))
    return x


@dataclasses.dataclass
class OfficialTile:
    y: int
    x: int
    height: int
    width: int
    samples: torch.Tensor  # [5, 4, height/8, width/8] diffusion latents


@dataclasses.dataclass
class OfficialLatents:
    """Sampler output of official mode: per segment, the latents of each image tile."""

    plan: LRPlan
    segments: list[list[int]]
    tiles: list[list[OfficialTile]]
    vqgantile_size: int
    vqgantile_stride: int


def image_tiles(plan: LRPlan, size: int, stride: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Image-tile origins and the flow-tile origins the script zips with them (column-major)."""
    hp, wp = plan.padded
    image = [(y, x) for x in patch_starts(wp, size, stride) for y in patch_starts(hp, size, stride)]
    flow = [(y, x) for x in patch_starts(wp // 8, size // 8, stride // 8) for y in patch_starts(hp // 8, size // 8, stride // 8)]
    return image, flow


def official_sample(frames: torch.Tensor, flow: ClipFlow, *, unet, lr_encoder, first_stage, context: torch.Tensor,
                    steps: int = OFFICIAL_STEPS, strength: float = OFFICIAL_GUIDANCE_STRENGTH, seed: int = OFFICIAL_SEED,
                    vqgantile_size: int = OFFICIAL_IMAGE_TILE, vqgantile_stride: int = OFFICIAL_IMAGE_TILE_STRIDE,
                    tile_overlap: int = OFFICIAL_LATENT_TILE_OVERLAP, n_frames: int = OFFICIAL_WINDOW, noise=None,
                    hooks: Optional[Hooks] = None, trace: Optional[dict] = None) -> OfficialLatents:
    """Sample every official segment and image tile; frames ``[N,H,W,3]`` with the plan of ``flow``."""
    plan = flow.plan
    if flow.num_frames != frames.shape[0]:
        raise ValueError(f"the flow covers {flow.num_frames} frames but {frames.shape[0]} frames were given")
    schedule = respaced_schedule(steps)
    noise = noise if noise is not None else SeededNoise(seed)
    device = compute_device(unet)
    segments = official_segments(frames.shape[0], n_frames)
    origins, flow_origins = image_tiles(plan, vqgantile_size, vqgantile_stride)
    pairs = list(zip(origins, flow_origins))
    hp, wp = plan.padded
    progress = ProgressCounter(hooks, len(segments) * len(pairs) * schedule.steps, "sampling")
    all_tiles = []
    for seg_index, segment in enumerate(segments):
        padded = plan.prepare(frames[segment], device)
        motion = flow.segment_motion(segment, plan)
        if trace is not None:
            trace[f"seg{seg_index}.motion"] = motion
        seg_tiles = []
        for tile_index, ((y, x), (fy, fx)) in enumerate(pairs):
            th, tw = min(vqgantile_size, hp), min(vqgantile_size, wp)
            fh, fw = min(vqgantile_size // 8, hp // 8 - fy), min(vqgantile_size // 8, wp // 8 - fx)
            lr_tile = padded[..., y:y + th, x:x + tw]
            noise.begin_canvas()
            posterior = first_stage.encode(lr_tile.to(next(first_stage.parameters()).dtype))
            init_latent = LATENT_SCALE * posterior.sample(noise=noise.posterior(posterior.mean)).float()
            check_finite(init_latent, "VAE encode (sampler)", next(first_stage.parameters()).dtype, DIFFUSION_LOADER)
            x_T = q_sample_respace(schedule, init_latent, noise.start(init_latent))
            samples = sample_canvas(unet, lr_encoder, x_T, init_latent, context, schedule, noise.step,
                                    motion=motion.crop(fy, fx, fh, fw), strength=strength, tile=OFFICIAL_LATENT_TILE,
                                    overlap=tile_overlap, callback=lambda info: progress.step(info.x0),
                                    between_tiles=hooks.interrupt_point if hooks is not None else None)
            check_finite(samples, "sampling", next(unet.parameters()).dtype, DIFFUSION_LOADER)
            if trace is not None:
                trace[f"seg{seg_index}.tile{tile_index}.init_latent"] = init_latent
                trace[f"seg{seg_index}.tile{tile_index}.samples"] = samples
            seg_tiles.append(OfficialTile(y, x, th, tw, samples))
        all_tiles.append(seg_tiles)
    return OfficialLatents(plan, segments, all_tiles, vqgantile_size, vqgantile_stride)


def official_decode(latents: OfficialLatents, frames: torch.Tensor, video_vae, *, dec_w: float = OFFICIAL_FUSION_W,
                    colorfix: str = COLOR_FIX, hooks: Optional[Hooks] = None, trace: Optional[dict] = None) -> torch.Tensor:
    """CFW-decode, colour-fix and average the image tiles; return ``[N,H',W',3]`` uint8 frames."""
    plan = latents.plan
    device = compute_device(video_vae)
    count = frames.shape[0]
    out: list[Optional[torch.Tensor]] = [None] * count
    progress = ProgressCounter(hooks, sum(len(t) for t in latents.tiles), "decoding")
    for seg_index, (segment, tiles) in enumerate(zip(latents.segments, latents.tiles)):
        padded = plan.prepare(frames[segment], device)
        total = torch.zeros_like(padded)
        counts = torch.zeros_like(padded)
        for tile_index, tile in enumerate(tiles):
            area = (Ellipsis, slice(tile.y, tile.y + tile.height), slice(tile.x, tile.x + tile.width))
            lr_tile = padded[area]
            _, features = video_vae.encode(lr_tile)
            decoded = video_vae.decode(tile.samples.to(device) / LATENT_SCALE, features, dec_w)
            check_finite(decoded, "CFW decode", next(video_vae.parameters()).dtype, VIDEO_VAE_LOADER)
            fixed = color_fix(colorfix, decoded, lr_tile)
            if trace is not None:
                trace[f"seg{seg_index}.tile{tile_index}.decoded"] = decoded
                trace[f"seg{seg_index}.tile{tile_index}.colorfixed"] = fixed
            total[area] += fixed
            counts[area] += 1
            progress.step()
        image = ((total / counts + 1.0) / 2.0).clamp(0.0, 1.0)
        if plan.factor > plan.scale:
            image = torch.nn.functional.interpolate(image, size=plan.official_shrunk_size, mode="bicubic",
                                                    align_corners=False).clamp(0.0, 1.0)
        result = to_uint8(image.float().cpu())[:, :plan.upsampled[0], :plan.upsampled[1]]
        # The official crop keeps the padded border when the frame was shrunk; cut to the exact size.
        result = fit_to_size(result, plan.output_size)
        for position, frame_index in enumerate(segment):
            out[frame_index] = result[position]  # a duplicated tail overwrites: the last duplicate wins
    return torch.stack(out)


def official_super_resolve(frames: torch.Tensor, *, unet, lr_encoder, first_stage, video_vae, raft, context: torch.Tensor,
                           steps: int = OFFICIAL_STEPS, dec_w: float = OFFICIAL_FUSION_W, colorfix: str = COLOR_FIX,
                           seed: int = OFFICIAL_SEED, strength: float = OFFICIAL_GUIDANCE_STRENGTH,
                           upscale: float = OFFICIAL_SCALE, vqgantile_size: int = OFFICIAL_IMAGE_TILE,
                           vqgantile_stride: int = OFFICIAL_IMAGE_TILE_STRIDE,
                           tile_overlap: int = OFFICIAL_LATENT_TILE_OVERLAP, n_frames: int = OFFICIAL_WINDOW, noise=None,
                           hooks: Optional[Hooks] = None, trace: Optional[dict] = None) -> torch.Tensor:
    """LR frames ``[N,H,W,3]`` uint8 -> SR frames uint8, as the official script (flow, sample, decode)."""
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected RGB frames [N,H,W,3], got {tuple(frames.shape)}")
    if frames.shape[0] == 0:
        raise ValueError("no frames to process")
    plan = LRPlan.create(frames.shape[1], frames.shape[2], upscale)
    flow = clip_flows(raft, frames, plan, cut_threshold=float("inf"), hooks=hooks)
    if trace is not None:
        trace["flow"] = flow
    latents = official_sample(frames, flow, unet=unet, lr_encoder=lr_encoder, first_stage=first_stage, context=context,
                              steps=steps, strength=strength, seed=seed, vqgantile_size=vqgantile_size,
                              vqgantile_stride=vqgantile_stride, tile_overlap=tile_overlap, n_frames=n_frames,
                              noise=noise, hooks=hooks, trace=trace)
    return official_decode(latents, frames, video_vae, dec_w=dec_w, colorfix=colorfix, hooks=hooks, trace=trace)
