"""Optical-flow utilities of the MGLD-VSR pipeline: warping, occlusion check, flow resizing, flow estimation.

Conventions (README section 1): channel 0 of a flow is the horizontal displacement u (+x = right),
channel 1 the vertical v (+y = down), in pixels of the grid the flow lives on. A flow from frame A
to frame B stored on A's grid maps pixel p of A to p + F(p) in B.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from ..defaults import OFFICIAL_OCCLUSION_ALPHA, OFFICIAL_OCCLUSION_BETA

__all__ = ["flow_warp", "forward_splat", "occlusion_masks", "resize_flow", "compute_flows", "MIN_FLOW_INPUT_SIDE"]

#: RAFT's coarsest correlation level is (padded side)/64 pixels; it must be at least 2 pixels wide,
#: otherwise the lookup normalises by (W - 1) = 0 and produces NaN (README 3.6).
MIN_FLOW_INPUT_SIDE = 128


def _sampling_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """At least float32: pixel coordinates in half precision are off by whole pixels on wide images."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def flow_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``x`` [N,C,H,W] bilinearly at ``p + flow(p)`` (``flow`` [N,2,H,W]); zeros outside.

    This is the warp ``W(x, f)`` of the guidance loss and of the occlusion check: coordinates are
    normalised with ``2*X/max(W-1, 1) - 1`` and ``grid_sample(align_corners=True)`` is used.
    The sampling runs in (at least) float32 and the result is returned in ``x.dtype``;
    gradients flow to ``x`` (and to ``flow``) through ``grid_sample``.
    """
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow_warp expects x [N,C,H,W] and flow [N,2,H,W], got {tuple(x.shape)} and {tuple(flow.shape)}")
    if x.shape[0] != flow.shape[0] or x.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"flow_warp: x {tuple(x.shape)} and flow {tuple(flow.shape)} differ in batch or spatial size")
    n, _, h, w = x.shape
    dtype = _sampling_dtype(x, flow)
    cols = torch.arange(w, device=flow.device, dtype=dtype).view(1, 1, w)
    rows = torch.arange(h, device=flow.device, dtype=dtype).view(1, h, 1)
    target_x = cols + flow[:, 0].to(dtype)
    target_y = rows + flow[:, 1].to(dtype)
    grid = torch.stack((2 * target_x / max(w - 1, 1) - 1, 2 * target_y / max(h - 1, 1) - 1), dim=-1)
    warped = F.grid_sample(x.to(dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return warped.to(x.dtype)


def forward_splat(values: torch.Tensor, flow: torch.Tensor,
                  weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Push ``values`` [N,C,H,W] from each pixel p to ``p + flow(p)``, spreading bilinearly; sums, not averages.

    The opposite of :func:`flow_warp`: a backward warp asks every target pixel where to read, which
    needs the flow on the *target's* grid; splatting only needs it on the source's grid, so it can
    carry a flow to a time no flow was computed for (frame interpolation). Each source pixel adds
    ``weight(p) * b * values(p)`` to the 4 target pixels around ``p + flow(p)`` (``b`` its bilinear
    share; targets outside the frame are dropped). Returns ``(weighted sums [N,C,H,W], weight sums
    [N,1,H,W], coverage [N,1,H,W])``: divide the first by the second for the weighted mean; the
    coverage is the sum of the bare bilinear shares (about 1 per source where the motion is smooth,
    0 in holes nobody moves into).
    """
    if values.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2 or weight.dim() != 4 or weight.shape[1] != 1:
        raise ValueError(f"forward_splat expects values [N,C,H,W], flow [N,2,H,W] and weight [N,1,H,W], got "
                         f"{tuple(values.shape)}, {tuple(flow.shape)} and {tuple(weight.shape)}")
    n, c, h, w = values.shape
    dtype = _sampling_dtype(values, flow, weight)
    cols = torch.arange(w, device=flow.device, dtype=dtype).view(1, 1, w)
    rows = torch.arange(h, device=flow.device, dtype=dtype).view(1, h, 1)
    x = cols + flow[:, 0].to(dtype)
    y = rows + flow[:, 1].to(dtype)
    x0, y0 = x.floor(), y.floor()
    fx, fy = x - x0, y - y0
    # One buffer for the weighted values, the weight and the coverage: one scatter per corner.
    source = torch.cat([values.to(dtype) * weight.to(dtype), weight.to(dtype), torch.ones_like(weight, dtype=dtype)], 1)
    source = source.flatten(2)  # [N, C+2, H*W]
    out = torch.zeros_like(source)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        tx, ty = x0 + dx, y0 + dy
        inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)  # False for non-finite targets too
        share = torch.where(inside, (fx if dx else 1 - fx) * (fy if dy else 1 - fy), 0.0)
        index = torch.where(inside, ty * w + tx, 0.0).long().flatten(1)  # [N, H*W]
        out.scatter_add_(2, index.unsqueeze(1).expand(n, c + 2, h * w), source * share.flatten(1).unsqueeze(1))
    out = out.view(n, c + 2, h, w)
    return out[:, :c].to(values.dtype), out[:, c:c + 1].to(values.dtype), out[:, c + 1:].to(values.dtype)


def occlusion_masks(
    fwd_flow: torch.Tensor, bwd_flow: torch.Tensor, alpha: float = OFFICIAL_OCCLUSION_ALPHA,
    beta: float = OFFICIAL_OCCLUSION_BETA
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-backward consistency check (UnFlow); returns ``(fwd_occ, bwd_occ)``, 1.0 = occluded.

    ``fwd_flow`` goes from frame A to frame B on A's grid, ``bwd_flow`` from B to A on B's grid.
    A pixel of A is occluded when ``|fwd + W(bwd, fwd)| > alpha*(|fwd| + |bwd|) + beta`` (L2 norms
    over the two flow channels, strict ``>``); ``bwd_occ`` is the same test with the roles swapped,
    on B's grid. In the pipeline (README 5.1 step 7) A = frame i, B = frame i+1, i.e.
    ``fwd_flow = flows_backward[:, i]`` and ``bwd_flow = flows_forward[:, i]``.

    Shapes: 4-D flows [N,2,H,W] give masks [N,H,W] (the official layout, no channel dim); 5-D
    flows [B,T-1,2,H,W] give masks [B,T-1,1,H,W] (the layout the guidance consumes). The masks
    have the flows' dtype and hold exactly 0.0 or 1.0.
    """
    if fwd_flow.shape != bwd_flow.shape:
        raise ValueError(f"occlusion_masks: flow shapes differ, {tuple(fwd_flow.shape)} vs {tuple(bwd_flow.shape)}")
    if fwd_flow.dim() == 5:
        b, pairs = fwd_flow.shape[:2]
        fwd_occ, bwd_occ = occlusion_masks(fwd_flow.flatten(0, 1), bwd_flow.flatten(0, 1), alpha, beta)
        return (fwd_occ.view(b, pairs, 1, *fwd_occ.shape[-2:]), bwd_occ.view(b, pairs, 1, *bwd_occ.shape[-2:]))
    if fwd_flow.dim() != 4 or fwd_flow.shape[1] != 2:
        raise ValueError(f"occlusion_masks expects flows [N,2,H,W] or [B,T-1,2,H,W], got {tuple(fwd_flow.shape)}")
    magnitude = torch.linalg.vector_norm(fwd_flow, dim=1) + torch.linalg.vector_norm(bwd_flow, dim=1)
    threshold = alpha * magnitude + beta
    fwd_error = torch.linalg.vector_norm(fwd_flow + flow_warp(bwd_flow, fwd_flow), dim=1)
    bwd_error = torch.linalg.vector_norm(bwd_flow + flow_warp(fwd_flow, bwd_flow), dim=1)
    return (fwd_error > threshold).to(fwd_flow.dtype), (bwd_error > threshold).to(fwd_flow.dtype)


def resize_flow(flow: torch.Tensor, size: tuple[int, int] | list[int]) -> torch.Tensor:
    """Resize a flow field to ``size = (height, width)``: vectors scaled, then bilinear resampling.

    u is multiplied by ``out_w / in_w`` and v by ``out_h / in_h`` before a bilinear resize with
    ``align_corners=False`` (README 5.1 step 6). Accepts [N,2,H,W] or [B,T,2,H,W].
    """
    if flow.dim() == 5:
        b, t = flow.shape[:2]
        resized = resize_flow(flow.flatten(0, 1), size)
        return resized.view(b, t, *resized.shape[1:])
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"resize_flow expects a flow [N,2,H,W] or [B,T,2,H,W], got {tuple(flow.shape)}")
    out_h, out_w = (int(s) for s in size)
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"resize_flow: target size must be positive, got {tuple(size)}")
    in_h, in_w = flow.shape[-2:]
    scaled = flow.clone()
    scaled[:, 0] *= out_w / in_w
    scaled[:, 1] *= out_h / in_h
    return F.interpolate(scaled, size=(out_h, out_w), mode="bilinear", align_corners=False)


def compute_flows(
    raft,
    frames: torch.Tensor,
    iters: int | None = None,
    max_pairs_per_call: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows between consecutive frames of ``frames`` [B,T,3,H,W] (RGB in [0,1], not normalised).

    Returns ``(flows_forward, flows_backward)``, each [B,T-1,2,H,W], named as in the official code:
    ``flows_forward[:, i] = RAFT(frame i+1, frame i)`` (from i+1 to i, on frame i+1's grid, used for
    forward-in-time propagation) and ``flows_backward[:, i] = RAFT(frame i, frame i+1)``.

    All 2*B*(T-1) ordered pairs go through ``raft`` in one batched call (``max_pairs_per_call``
    splits that batch only to bound memory: the all-pairs correlation volume grows with
    (H*W/64)^2 per pair). Frames are replicate-padded to a multiple of 8 (split evenly, the odd
    pixel at the bottom/right) and the flows cropped back. ``raft(image1, image2[, iters=...])``
    maps two [N,3,H,W] batches to [N,2,H,W]; inputs are moved to its parameters' device/dtype.
    """
    from ...models.raft.raft import sintel_padding

    if frames.dim() != 5 or frames.shape[2] != 3:
        raise ValueError(f"compute_flows expects frames [B,T,3,H,W] (RGB in [0,1]), got shape {tuple(frames.shape)}")
    b, t, c, h, w = frames.shape
    if t < 2:
        raise ValueError(f"compute_flows needs at least 2 frames per video to form a pair, got T={t}")
    pad_left, pad_right, pad_top, pad_bottom = sintel_padding(h, w)
    padded_h, padded_w = h + pad_top + pad_bottom, w + pad_left + pad_right
    if min(padded_h, padded_w) < MIN_FLOW_INPUT_SIDE:
        raise ValueError(
            f"flow input {h}x{w} is too small: RAFT needs at least {MIN_FLOW_INPUT_SIDE} px per side (after padding "
            f"to a multiple of 8); smaller inputs make its coarsest correlation level 1 px wide and the flow NaN. "
            f"Upscale the frames first (the official pipeline always feeds >= 128 px)."
        )
    if max_pairs_per_call is not None and max_pairs_per_call < 1:
        raise ValueError(f"max_pairs_per_call must be >= 1, got {max_pairs_per_call}")

    params = next(raft.parameters(), None) if hasattr(raft, "parameters") else None
    if params is not None:
        frames = frames.to(device=params.device, dtype=params.dtype)

    earlier = frames[:, :-1].reshape(b * (t - 1), c, h, w)
    later = frames[:, 1:].reshape(b * (t - 1), c, h, w)
    # First half of the batch: (i+1 -> i) = flows_forward; second half: (i -> i+1) = flows_backward.
    image1 = torch.cat([later, earlier], dim=0)
    image2 = torch.cat([earlier, later], dim=0)
    pads = (pad_left, pad_right, pad_top, pad_bottom)
    if any(pads):
        image1 = F.pad(image1, pads, mode="replicate")
        image2 = F.pad(image2, pads, mode="replicate")

    def run(a: torch.Tensor, b_: torch.Tensor) -> torch.Tensor:
        return raft(a, b_) if iters is None else raft(a, b_, iters=iters)

    total = image1.shape[0]
    step = total if max_pairs_per_call is None else max_pairs_per_call
    flows = torch.cat([run(image1[s : s + step], image2[s : s + step]) for s in range(0, total, step)], dim=0)
    if flows.shape != (total, 2, padded_h, padded_w):
        raise ValueError(f"the flow network returned {tuple(flows.shape)}, expected {(total, 2, padded_h, padded_w)}")
    flows = flows[:, :, pad_top : pad_top + h, pad_left : pad_left + w]
    flows_forward, flows_backward = flows.split(b * (t - 1), dim=0)
    return flows_forward.reshape(b, t - 1, 2, h, w), flows_backward.reshape(b, t - 1, 2, h, w)
