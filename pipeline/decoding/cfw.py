"""The temporal CFW decoder over a whole clip: windows of the video VAE, spatial tiles, colour fix.

The video VAE decodes clean latents in windows of its own length (5 frames, its temporal layers' training
length), fusing features of the LR frames with weight ``w`` (CFW). Default mode decodes disjoint windows
(:data:`DECODE_WINDOW_OVERLAP`), each in spatial tiles fitted to the frame so memory stays bounded at any
resolution, and colour-fixes whole frames against the LR frames after decoding, not per tile. Frames are
yielded as soon as they are final, so a long clip streams into the video file.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, Optional

import torch

from ...models.placement import compute_device
from ..defaults import COLOR_FIX, DECODE_TILE_OVERLAP, FUSION_W, LATENT_SCALE
from ..frames import LRPlan
from ..hooks import Hooks, ProgressCounter
from ..memory.budget import fit_decode
from ..memory.oom import is_out_of_memory, release_cached_memory, smaller_tile
from ..numerics import VIDEO_VAE_LOADER, check_finite
from ..sampling.loop import VideoLatents
from ..sampling.tiling import fitted_origins
from ..sampling.windows import plan_windows
from ..workers.executor import LOCAL, Executor
from .colorfix import color_fix

#: Frames shared by neighbouring temporal windows of the decoder, whose temporal layers mix clips of
#: ``video_vae.num_frames`` (5); shared frames are blended with triangular weights. None, as in the
#: official script: sharing 2 frames decoded each frame 5/3 times and left no less flicker at the
#: decoder's window borders (benchmarks/quality.py --decoder, 20 frames: border flicker 1.05 with
#: disjoint windows, 1.06 with 2 shared frames, 1.04 at the same pairs with 2 shared; warping
#: error 16.74 against 16.69).
DECODE_WINDOW_OVERLAP = 0


def feather(length: int, ramp: int, start_edge: bool, end_edge: bool) -> torch.Tensor:
    """1-D blending weights of a tile: linear ramps of ``ramp`` pixels on sides shared with a neighbour."""
    pos = torch.arange(length, dtype=torch.float32)
    w = torch.ones(length)
    if ramp > 0 and not start_edge:
        w = torch.minimum(w, (pos + 1) / (ramp + 1))
    if ramp > 0 and not end_edge:
        w = torch.minimum(w, (length - pos) / (ramp + 1))
    return w


def decode_window(video_vae, z: torch.Tensor, lr: torch.Tensor, dec_w: float, tile: int = 0,
                  overlap: int = DECODE_TILE_OVERLAP,
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


def decode_frames(latents: VideoLatents, frames: torch.Tensor, video_vae, *, dec_w: float = FUSION_W,
                  colorfix: str = COLOR_FIX, overlap: int | None = None, tile: int = 0, memory_budget_gb: float = 0.0,
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
