"""Guidance-strength sweep on a region preview: sample, decode and measure a box of the output per strength.

The sampling half is ``sampling/region.py`` (the full run's plan executed on a box and a run of
frames). This module adds what the preview node needs around it: the output box in latent pixels,
the LR latents, noise and motion computed once for all strengths, the decoder on the box, each
strength's warping error on the box, and the labelled grid. Default mode only (docs/preview.md says
why the official mode has no faithful preview).
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Optional, Sequence

import torch
from torch.nn import functional as F

from ..models.placement import compute_device
from .decoding.cfw import decode_window
from .decoding.colorfix import channel_mean_std, color_fix
from .frames import LRPlan
from .hooks import Hooks
from .motion.field import ClipFlow
from .motion.pairs import PairMotion
from .motion.flow_ops import resize_flow
from .motion.warping_error import warping_errors
from .numerics import DIFFUSION_LOADER, VIDEO_VAE_LOADER, check_finite
from .sampling.loop import STATE_DEVICE, EncodeChunk, lr_latents_of_chunk
from .sampling.plan import SamplingOptions, SamplingPlan
from .sampling.region import Extent, RegionNoise, decoder_windows, most_motion_box, region_extent, sample_region


@dataclasses.dataclass(frozen=True)
class PreviewRequest:
    """What to preview: output frames ``[start, start + count)``, an output box ``(x, y, w, h)`` in pixels
    (``None``: the ``auto_size`` square with the most motion), the margins and the strengths."""

    start: int
    count: int
    box: Optional[tuple[int, int, int, int]]
    margin: int  # latent pixels around the box
    frame_margin: int  # frames beyond the decoder windows of the shown frames
    strengths: tuple[float, ...]
    auto_size: int = 256


@dataclasses.dataclass
class PreviewResult:
    strengths: tuple[float, ...]
    clips: dict  # strength -> [count, h, w, 3] float in [0, 1]
    errors: dict  # strength -> mean warping error x1000 over the region's pairs
    seconds: dict  # strength -> sampling + decoding time
    box: tuple[int, int, int, int]  # output pixels (x, y, w, h)
    extent: Extent
    setup_seconds: float  # LR latents, noise and motion: once for the sweep

    def table(self) -> str:
        """The sweep as the node shows it and the headless runner prints it."""
        x, y, w, h = self.box
        lines = [f"guidance preview: {w}x{h} px at ({x}, {y}), frames {self.extent.start}..{self.extent.stop - 1} "
                 f"sampled (latent box {self.extent.size[0]}x{self.extent.size[1]}); setup {self.setup_seconds:.1f} s",
                 f"{'strength':>9}  {'warping error x1000':>19}  {'seconds':>8}"]
        for s in self.strengths:
            error = self.errors[s]
            shown = "n/a" if math.isnan(error) else f"{error:.3f}"
            lines.append(f"{s:>9g}  {shown:>19}  {self.seconds[s]:>8.1f}")
        return "\n".join(lines)


def latent_box(plan: LRPlan, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Output-pixel box ``(x, y, w, h)`` -> the latent ``(y, x, h, w)`` covering it on the working grid."""
    x, y, w, h = box
    (oh, ow), (uh, uw) = plan.output_size, plan.upsampled
    y0, y1 = math.floor(y * uh / oh / 8), math.ceil((y + h) * uh / oh / 8)
    x0, x1 = math.floor(x * uw / ow / 8), math.ceil((x + w) * uw / ow / 8)
    return y0, x0, y1 - y0, x1 - x0


def auto_box(motion, plan: LRPlan, frames: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """The ``size``-pixel square (output pixels) with the most flow motion over ``frames``."""
    oh, ow = plan.output_size
    side_h, side_w = min(size, oh), min(size, ow)
    uh, uw = plan.upsampled
    lh, lw = max(1, round(side_h * uh / oh / 8)), max(1, round(side_w * uw / ow / 8))
    content = (max(1, uh // 8), max(1, uw // 8))  # not the padding
    cropped = motion.crop(0, 0, *content)
    ly, lx = most_motion_box(cropped, frames, (lh, lw))
    y = min(oh - side_h, round(ly * 8 * oh / uh))
    x = min(ow - side_w, round(lx * 8 * ow / uw))
    return x, y, side_w, side_h


def adain_with_whole_frame(content: torch.Tensor, content_whole: torch.Tensor, style_whole: torch.Tensor) -> torch.Tensor:
    """AdaIN of a box with the statistics of whole frames: the decoded frame around it (the box sampled, the
    rest decoded from the LR latents) and the LR frame. The full run fixes each frame with its whole decoded
    frame's mean and spread; outside the box the LR latents decode to nearly the same colours, so these
    statistics are far closer to the full run's than any estimate from the box alone (benchmarks/preview.py:
    45-50 dB against 22-36 dB for the full run's own latents through the preview's decoder)."""
    mean_c, std_c = channel_mean_std(content_whole)
    mean_s, std_s = channel_mean_std(style_whole)
    return (content - mean_c) / std_c * std_s + mean_s


def adain_in_region(content: torch.Tensor, style: torch.Tensor, style_whole: torch.Tensor) -> torch.Tensor:
    """AdaIN of a box with the whole frame's statistics estimated (the full run uses the whole frame's).

    The LR frame is whole (exact statistics); the decoded frame is not, so its whole-frame mean and
    spread are estimated as the LR's, moved by how far the box's decoded content is from the box's LR."""
    mean_c, std_c = channel_mean_std(content)
    mean_s, std_s = channel_mean_std(style)
    mean_w, std_w = channel_mean_std(style_whole)
    whole_mean, whole_std = mean_c + (mean_w - mean_s), std_c * std_w / std_s
    return (content - whole_mean) / whole_std * std_w + mean_w


def decode_region(latents: torch.Tensor, extent: Extent, shown: Sequence[int], frames: torch.Tensor,
                  plan: LRPlan, cuts, video_vae, dec_w: float, colorfix: str,
                  box: tuple[int, int, int, int], surround: Optional[torch.Tensor] = None,
                  tile: int = 0) -> torch.Tensor:
    """The output box of the ``shown`` frames ``[len, h, w, 3]`` in [0, 1], decoded as the full run decodes them:
    the same decoder windows, the box's LR pixels, the colour fix with whole-frame statistics.

    ``surround`` (the LR latents of the extent's whole frames) fills the frame around the box, which is
    then decoded in the full run's decode tiles (``tile`` latent pixels, 0 = whole frames): the
    decoder's GroupNorm and attention see a whole tile, of which only the box is sampled, instead of
    the box alone, and the colour fix takes its decoded-frame statistics from that whole decoded frame.
    Without ``surround`` only the box is decoded and those statistics are estimated from it
    (:func:`adain_in_region`; benchmarks/preview.py measures both)."""
    device = compute_device(video_vae)
    dtype = next(video_vae.parameters()).dtype
    (y0, y1), (x0, x1) = (extent.y0, extent.y1), (extent.x0, extent.x1)
    uh, uw = plan.upsampled
    (oh, ow) = plan.output_size
    x, y, w, h = box
    out, pending = {}, {}
    wanted = set(shown)
    for window in decoder_windows(frames.shape[0], video_vae.num_frames, cuts):
        if not wanted & set(window.frames):
            continue
        local = [f - extent.start for f in window.frames]
        lr_whole = plan.prepare(frames[list(window.frames)], device)
        lr = lr_whole[..., 8 * y0:8 * y1, 8 * x0:8 * x1].to(dtype)
        if surround is None:
            decoded = decode_window(video_vae, latents[local].to(device, dtype), lr, dec_w).float()
            whole = None
        else:
            canvas = surround[local].clone()
            canvas[(...,) + extent.area] = latents[local]
            whole = decode_window(video_vae, canvas.to(device, dtype), lr_whole.to(dtype), dec_w, tile).float()
            decoded = whole[..., 8 * y0:8 * y1, 8 * x0:8 * x1]
        check_finite(decoded, "CFW decode (preview)", dtype, VIDEO_VAE_LOADER)
        # windows sharing a frame (the last one sits flush with the clip's end) are blended by their weights
        for pos, (f, weight) in enumerate(zip(window.frames, window.weights)):
            if f in wanted and weight > 0:
                entry = pending.setdefault(f, [0.0, 0.0, lr[pos:pos + 1].float(),
                                               lr_whole[pos:pos + 1, :, :uh, :uw].float(), 0.0])
                entry[0] = entry[0] + decoded[pos:pos + 1] * weight
                entry[1] = entry[1] + weight
                if whole is not None:  # the whole decoded frame (picture part), for the colour fix's statistics
                    entry[4] = entry[4] + whole[pos:pos + 1, :, :uh, :uw] * weight
    # the picture part of the box (the full run colour-fixes the frame without its padding)
    ph, pw = min(8 * y1, uh) - 8 * y0, min(8 * x1, uw) - 8 * x0
    for f in shown:
        total, weight, style, style_whole, content_whole = pending[f]
        content, style = (total / weight)[..., :ph, :pw], style[..., :ph, :pw]
        if colorfix == "adain" and surround is not None:
            fixed = adain_with_whole_frame(content, content_whole / weight, style_whole)
        elif colorfix == "adain":
            fixed = adain_in_region(content, style, style_whole)
        else:
            fixed = color_fix(colorfix, content, style)
        image = ((fixed + 1.0) / 2.0).clamp(0.0, 1.0)
        # the output box on the working grid, then at output size when the two differ
        top, left = y * uh / oh - 8 * y0, x * uw / ow - 8 * x0
        if (uh, uw) == (oh, ow):
            crop = image[..., round(top):round(top) + h, round(left):round(left) + w]
        else:
            sh, sw = math.ceil(h * uh / oh), math.ceil(w * uw / ow)
            crop = image[..., int(top):int(top) + sh, int(left):int(left) + sw]
            crop = F.interpolate(crop, size=(h, w), mode="bicubic", align_corners=False).clamp(0.0, 1.0)
        out[f] = crop[0].permute(1, 2, 0).cpu()
    return torch.stack([out[f] for f in shown])


class RegionFlow:
    """Per-pair motion of the output box (a motion source of ``warping_errors``): the LR clip's flows at
    output size, cut to the box, so the box's warping error is the full frame's restricted to it."""

    def __init__(self, flow: ClipFlow, first: int, box: tuple[int, int, int, int]):
        self.flow, self.first, self.box = flow, first, box
        self.num_frames = None

    def is_cut(self, index: int, frame0, frame1) -> bool:
        return bool(self.flow.cuts[self.first + index])

    def native_flows(self, index: int, frame0, frame1):
        pair = self.first + index
        ch, cw = self.flow.plan.flow_content_size
        oh, ow = self.flow.plan.output_size
        x, y, w, h = self.box
        flows = []
        for field in (self.flow.flows_backward, self.flow.flows_forward):  # i -> i+1, then i+1 -> i
            whole = resize_flow(field[pair:pair + 1, :, :ch, :cw].float(), (oh, ow))
            flows.append(whole[..., y:y + h, x:x + w])
        return tuple(flows)

    def __call__(self, index, frame0, frame1) -> PairMotion:
        return PairMotion.from_flows(*self.native_flows(index, frame0, frame1))


def region_warping_error(clip: torch.Tensor, flow: ClipFlow, first: int, box) -> float:
    """Mean warping error x1000 of a region clip over its measurable pairs (NaN when none is)."""
    errors = warping_errors(clip, RegionFlow(flow, first, box)) * 1000
    finite = errors[torch.isfinite(errors)]
    return float(finite.mean()) if finite.numel() else float("nan")


def preview_sweep(frames: torch.Tensor, flow: ClipFlow, plan: LRPlan, options: SamplingOptions,
                  request: PreviewRequest, *, unet, lr_encoder, first_stage, context, video_vae,
                  dec_w: float, colorfix: str, decode_tile: int = 0, hooks: Optional[Hooks] = None) -> PreviewResult:
    """Every strength of ``request`` on the same region: LR latents, noise and motion made once.

    ``decode_tile`` is the decoder node's (in latent pixels): the region is decoded in the full run's tiles."""
    setup = time.perf_counter()
    n = frames.shape[0]
    shown = list(range(request.start, request.start + request.count))
    motion = flow.motion_for(plan).to(STATE_DEVICE)
    box = request.box or auto_box(motion, plan, (request.start, request.start + request.count), request.auto_size)
    sampling = SamplingPlan.create(options, n, plan.latent_size, motion.cuts)
    extent = region_extent(sampling, (request.start, request.start + request.count), latent_box(plan, box),
                           request.margin, request.frame_margin, video_vae.num_frames)
    noise = RegionNoise.draw(options.seed, n, plan.latent_size, len(sampling.steps), extent)
    device = compute_device(unet)
    # The full run encodes every frame with its slice of one posterior draw; whole frames of the extent here.
    lr_whole = encode_with_draws(first_stage, frames[extent.start:extent.stop], plan, noise.posterior)
    lr_latent = lr_whole[(...,) + extent.area].contiguous()
    check_finite(lr_latent, "VAE encode (preview)", next(first_stage.parameters()).dtype, DIFFUSION_LOADER)
    setup = time.perf_counter() - setup
    networks = {"unet": unet, "lr_encoder": lr_encoder, "context": context}
    clips, errors, seconds = {}, {}, {}
    for strength in request.strengths:
        began = time.perf_counter()
        latents = sample_region(sampling, extent, lr_latent, noise, motion, strength, networks=networks,
                                device=device, hooks=hooks)
        clip = decode_region(latents, extent, shown, frames, plan, motion.cuts, video_vae, dec_w, colorfix, box,
                             lr_whole, decode_tile)
        seconds[strength] = time.perf_counter() - began
        clips[strength] = clip
        errors[strength] = region_warping_error(clip, flow, request.start, box)
    return PreviewResult(tuple(request.strengths), clips, errors, seconds, box, extent, setup)



def encode_with_draws(first_stage, frames: torch.Tensor, plan: LRPlan, draws: torch.Tensor) -> torch.Tensor:
    """``encode_lr_latents`` of some frames with their slice of the full run's posterior draw."""
    chunk = max(1, min(8, 2 ** 20 // (plan.padded[0] * plan.padded[1])))  # as encode_lr_latents chunks
    units = (EncodeChunk(frames[a:a + chunk], draws[a:a + chunk], plan) for a in range(0, frames.shape[0], chunk))
    return torch.cat([lr_latents_of_chunk({"first_stage": first_stage}, unit) for unit in units])


#: 3x5 bitmap glyphs (rows top to bottom, 3 bits each) for the grid's labels: enough for "s=12.5 we 3.1".
GLYPHS = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7), "4": (5, 5, 7, 1, 1),
    "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1), "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7),
    ".": (0, 0, 0, 0, 2), "-": (0, 0, 7, 0, 0), "=": (0, 7, 0, 7, 0), " ": (0, 0, 0, 0, 0),
    "s": (3, 4, 2, 1, 6), "w": (0, 5, 5, 7, 5), "e": (7, 5, 7, 4, 7), "n": (0, 6, 5, 5, 5), "a": (0, 6, 3, 5, 7),
    "/": (1, 1, 2, 4, 4),
}


def label_image(text: str, width: int, scale: int = 2) -> torch.Tensor:
    """``[7 * scale, width, 3]``: ``text`` in white on black, cut at ``width``; drawn with Pillow's default
    font where Pillow is installed (ComfyUI ships it), else with the small built-in glyphs."""
    height = 7 * scale
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        return _glyph_label(text, width, scale)
    image = Image.new("RGB", (width, height))
    ImageDraw.Draw(image).text((scale, 1), text, fill=(255, 255, 255))
    return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(height, width, 3).float() / 255.0


def _glyph_label(text: str, width: int, scale: int) -> torch.Tensor:
    height = 7 * scale
    out = torch.zeros(height, width, 3)
    x = scale
    for char in text.lower():
        rows = GLYPHS.get(char, GLYPHS[" "])
        for r, bits in enumerate(rows):
            for c in range(3):
                if bits >> (2 - c) & 1:
                    y0, x0 = scale + r * scale, x + c * scale
                    out[y0:y0 + scale, x0:x0 + scale] = 1.0
        x += 4 * scale
        if x >= width:
            break
    return out


def strength_grid(result: PreviewResult, frame: int, gap: int = 4) -> torch.Tensor:
    """``[1, H, W, 3]``: frame ``frame`` (of the shown ones) at every strength side by side at 1:1, each
    labelled with its strength and warping error."""
    columns = []
    for s in result.strengths:
        image = result.clips[s][frame]
        error = result.errors[s]
        text = f"s={s:g} we={'n/a' if math.isnan(error) else f'{error:.2f}'}"
        columns.append(torch.cat([label_image(text, image.shape[1]), image], dim=0))
        columns.append(torch.ones(columns[-1].shape[0], gap, 3) * 0.5)
    return torch.cat(columns[:-1], dim=1).unsqueeze(0)


def side_by_side(a: torch.Tensor, b: torch.Tensor, labels: tuple[str, str], gap: int = 4) -> torch.Tensor:
    """``[1, H, 2W + gap, 3]``: two frames with their labels, the fallback of an A/B compare view."""
    parts = [torch.cat([label_image(labels[0], a.shape[1]), a], dim=0)]
    parts.append(torch.ones(parts[0].shape[0], gap, 3) * 0.5)
    parts.append(torch.cat([label_image(labels[1], b.shape[1]), b], dim=0))
    return torch.cat(parts, dim=1).unsqueeze(0)
