"""The official MGLD-VSR inference script, reproduced as a function (``official`` mode).

Non-overlapping 5-frame segments (the tail padded by repeating the last frame), LR upsampling and
+32 padding, flows on the whole padded segment, image tiles of ``vqgantile_size`` with equal-weight
averaging, re-seeding before every image tile, 64/32 latent canvas tiles, CFW decoding and colour
fix per image tile, truncating 8-bit conversion. Every quirk is kept on purpose (reference
README section 9): this mode exists to match the official numbers.
"""
from __future__ import annotations

from typing import Optional

import torch

from .colorfix import adain_color_fix, wavelet_color_fix
from .frames import (bicubic_upsample, flow_network_input, official_padding, patch_starts, reflect_pad, to_uint8,
                     uint8_to_model_range, upsample_factor)
from .hooks import Hooks, ProgressCounter
from .motion import MotionField, estimate_motion, occlusion_for_pairs
from .sampler import sample_canvas
from .schedule import q_sample_respace, respaced_schedule
from .noise import SeededNoise

LATENT_SCALE = 0.18215
COLOR_FIXES = {"adain": adain_color_fix, "wavelet": wavelet_color_fix, "none": None}


def color_fix(kind: str, image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    if kind not in COLOR_FIXES:
        raise ValueError(f"colour fix must be one of {sorted(COLOR_FIXES)}, got {kind!r}")
    fix = COLOR_FIXES[kind]
    return image if fix is None else fix(image, reference)


def official_super_resolve(frames: torch.Tensor, *, unet, lr_encoder, first_stage, video_vae, raft, context: torch.Tensor,
                           steps: int = 50, dec_w: float = 0.5, colorfix: str = "adain", seed: int = 42,
                           strength: float = 10.0, upscale: float = 4.0, vqgantile_size: int = 960,
                           vqgantile_stride: int = 750, tile_overlap: int = 32, n_frames: int = 5, noise=None,
                           hooks: Optional[Hooks] = None, trace: Optional[dict] = None) -> torch.Tensor:
    """LR frames ``[N,H,W,3]`` uint8 -> SR frames ``[N,H',W',3]`` uint8, numerically as the official script.

    ``noise`` defaults to the script's seeding (:class:`SeededNoise`); ``trace`` (a dict) receives
    intermediates for verification.
    """
    if frames.dim() != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"official mode expects uint8 RGB frames [N,H,W,3], got {tuple(frames.shape)} {frames.dtype}")
    count = frames.shape[0]
    if count == 0:
        raise ValueError("no frames to process")
    schedule = respaced_schedule(steps)
    noise = noise if noise is not None else SeededNoise(seed)
    device = next(unet.parameters()).device
    order = list(range(count)) + [count - 1] * ((-count) % n_frames)  # repeat the last frame to whole segments
    segments = [order[i:i + n_frames] for i in range(0, len(order), n_frames)]
    factor = upsample_factor(frames.shape[1], frames.shape[2], upscale)
    out: list[Optional[torch.Tensor]] = [None] * count
    progress = None
    for seg_index, segment in enumerate(segments):
        lr = bicubic_upsample(uint8_to_model_range(frames[segment]).to(device), factor)
        ori_h, ori_w = lr.shape[-2:]
        padded = reflect_pad(lr, *official_padding(ori_h, ori_w))
        hp, wp = padded.shape[-2:]
        flow_in = flow_network_input(padded)
        motion = estimate_motion(raft, flow_in, (hp // 8, wp // 8), cut_threshold=float("inf"))
        if trace is not None:
            trace[f"seg{seg_index}.flow_input"] = flow_in
            trace[f"seg{seg_index}.motion"] = motion
        image_tiles = [(y, x) for x in patch_starts(wp, vqgantile_size, vqgantile_stride)
                       for y in patch_starts(hp, vqgantile_size, vqgantile_stride)]
        size_l, stride_l = vqgantile_size // 8, vqgantile_stride // 8
        flow_tiles = [(y, x) for x in patch_starts(wp // 8, size_l, stride_l) for y in patch_starts(hp // 8, size_l, stride_l)]
        if progress is None:
            progress = ProgressCounter(hooks, len(segments) * len(image_tiles) * schedule.steps, "sampling")
        total = torch.zeros_like(padded)
        counts = torch.zeros_like(padded)
        for tile_index, ((y, x), (fy, fx)) in enumerate(zip(image_tiles, flow_tiles)):
            th, tw = min(vqgantile_size, hp), min(vqgantile_size, wp)
            lr_tile = padded[..., y:y + th, x:x + tw]
            flow_h, flow_w = min(size_l, hp // 8 - fy), min(size_l, wp // 8 - fx)
            tile_motion = motion.crop(fy, fx, flow_h, flow_w)
            noise.begin_canvas()
            posterior = first_stage.encode(lr_tile.to(next(first_stage.parameters()).dtype))
            init_latent = LATENT_SCALE * posterior.sample(noise=noise.posterior(posterior.mean)).float()
            x_T = q_sample_respace(schedule, init_latent, noise.start(init_latent))
            samples = sample_canvas(unet, lr_encoder, x_T, init_latent, context, schedule, noise.step,
                                    motion=tile_motion, strength=strength, tile=64, overlap=tile_overlap,
                                    callback=lambda info: progress.step(info.latents))
            _, features = video_vae.encode(lr_tile)
            decoded = video_vae.decode(samples / LATENT_SCALE, features, dec_w)
            fixed = color_fix(colorfix, decoded, lr_tile)
            if trace is not None:
                prefix = f"seg{seg_index}.tile{tile_index}"
                trace.update({f"{prefix}.init_latent": init_latent, f"{prefix}.samples": samples,
                              f"{prefix}.decoded": decoded, f"{prefix}.colorfixed": fixed})
            total[..., y:y + th, x:x + tw] += fixed
            counts[..., y:y + th, x:x + tw] += 1
        image = ((total / counts + 1.0) / 2.0).clamp(0.0, 1.0)
        if factor > upscale:
            size = (int(hp * upscale / factor), int(wp * upscale / factor))
            image = torch.nn.functional.interpolate(image, size=size, mode="bicubic", align_corners=False).clamp(0.0, 1.0)
        result = to_uint8(image.float().cpu())[:, :ori_h, :ori_w]
        for position, frame_index in enumerate(segment):
            out[frame_index] = result[position]  # a duplicated tail overwrites: the last duplicate wins
    return torch.stack(out)
