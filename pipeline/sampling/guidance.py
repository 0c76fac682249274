"""Motion guidance of MGLD-VSR: a flow-warping loss on the noisy latents and the gradient step it drives.

After every DDPM step the sampler nudges the latents of a T-frame window down the gradient of a
temporal-consistency loss: each frame's latent is compared with a neighbouring frame's latent warped by
the optical flow, ignoring occluded pixels (occlusion mask 1 = occluded, weight ``1 - occ``). The step is
``x <- x - s * logvar_j * dL/dx`` with ``s = -strength`` and ``logvar_j`` the clipped posterior
log-variance of the current respaced step (negative, -46.05 at j = 0), i.e. a descent step of size
``strength * |logvar_j|``.

The loss implemented here is the one the released code evaluates (``compute_temporal_condition_v4``),
which is not the paper's equation: its frame/flow indices are shifted by one and two of its terms compare
a frame with zero. See :func:`official_warping_loss` for the exact terms. The default mode uses the
paper's pairing over a whole clip instead (:func:`aligned_warping_loss`), calibrated so that a strength
means the same per-latent-pixel step at every resolution.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from ..motion.flow_ops import flow_warp
from ..defaults import OFFICIAL_GUIDANCE_STRENGTH, OFFICIAL_IMAGE_TILE
from .schedule import RespacedSchedule

__all__ = ["official_warping_loss", "warping_loss", "warping_loss_and_grad", "motion_guidance_step", "clip_guidance_step",
           "GUIDANCE_PAIRS_PER_CHUNK", "GUIDANCE_REFERENCE_AREA", "OFFICIAL_STRENGTH",
           "aligned_warping_loss"]

#: Neighbouring-frame pairs per chunk of the default mode's clip-wide guidance: bounds the autograd
#: graph (host RAM on CPU, accelerator memory otherwise) however long the clip is.
GUIDANCE_PAIRS_PER_CHUNK = 16

#: The script hard-codes ``guidance_scale = -10``; ``strength`` is its negation.
OFFICIAL_STRENGTH = OFFICIAL_GUIDANCE_STRENGTH

#: Latent pixels of one official image tile (``vqgantile_size`` 960 px = 120 latent px a side):
#: the area each official loss term averages over on any frame of at least that size. The default
#: mode's clip loss divides by this fixed area, so its per-pixel step is resolution independent
#: (see :func:`aligned_warping_loss`).
GUIDANCE_REFERENCE_AREA = (OFFICIAL_IMAGE_TILE // 8) ** 2


def _grad_ready(*tensors):
    """Normal tensors autograd may record: ComfyUI runs nodes under ``torch.inference_mode()``, whose
    tensors cannot be saved for backward, so those are cloned (call inside ``inference_mode(False)``)."""
    return tuple(t.clone() if isinstance(t, torch.Tensor) and t.is_inference() else t for t in tensors)


def _l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over every element (``F.l1_loss`` with its default mean reduction)."""
    return (a - b).abs().mean()


def official_warping_loss(
    latents: torch.Tensor,
    flows_forward: torch.Tensor,
    flows_backward: torch.Tensor,
    fwd_valid: torch.Tensor,
    bwd_valid: torch.Tensor,
    batch_reduction: str = "mean",
) -> torch.Tensor:
    """The released guidance loss, for windows of any length T >= 2 (identical to the official one at T = 5).

    Inputs are already in video layout and validated (see :func:`warping_loss`):
    ``latents`` [B,T,C,h,w]; ``flows_forward`` [B,T-1,2,h,w] (``ff_i``: frame i+1 -> i);
    ``flows_backward`` (``fb_i``: frame i -> i+1); ``fwd_valid = 1 - fwd_occ`` and
    ``bwd_valid = 1 - bwd_occ`` [B,T-1,1,h,w] (``mf_i``, ``mb_i``), broadcast over the C channels.

    With ``l(a, b) = mean|a - b|`` over all B*C*h*w elements and ``z_i`` the latent of frame i::

        backward = l(mf_{T-2} * 0, mf_{T-2} * z_{T-2})
                   + sum_{i = T-3 .. 0} l(mf_i * W(z_{i+1}, fb_{i+1}), mf_i * z_i)
        forward  = l(mb_0 * 0, mb_0 * z_1)
                   + sum_{i = 2 .. T-1} l(mb_{i-1} * W(z_{i-1}, ff_{i-2}), mb_{i-1} * z_i)
        L = backward + forward

    ``fb_0`` and ``ff_{T-2}`` never enter. This is exactly what the official two propagation loops
    compute when their frame count is T, so it is the generalisation used for T != 5; at T = 2 only the
    two zero terms remain. Terms are accumulated in the official order so float32 results match it.

    ``batch_reduction="mean"`` is the official reduction (each term averages over the B videos as well);
    ``"sum"`` adds the per-video losses instead, so batching B windows gives every window the gradient
    it would get on its own (identical to "mean" for B = 1, the only case the script runs).
    """
    if batch_reduction not in ("mean", "sum"):
        raise ValueError(f"batch_reduction must be 'mean' or 'sum', got {batch_reduction!r}")
    b, t = latents.shape[:2]
    if batch_reduction == "sum" and b > 1:
        return sum(
            official_warping_loss(
                latents[k : k + 1], flows_forward[k : k + 1], flows_backward[k : k + 1],
                fwd_valid[k : k + 1], bwd_valid[k : k + 1],
            )
            for k in range(b)
        )

    # Two propagation sweeps, as in the released code: each visits the frames in order, compares the
    # current frame with what the previous iteration warped (zeros at the first comparison), then warps
    # the current frame with the flow of its own index for the next iteration. Building the graph this
    # way (one frame slice per visit, warps in sweep order) keeps float32 gradients identical to it.
    zeros = torch.zeros_like(latents[:, 0])

    loss_backward, carried = 0, zeros
    for i in range(t - 2, -1, -1):  # from the second-to-last frame back to the first; masks 1 - fwd_occ
        frame, mask = latents[:, i], fwd_valid[:, i]
        loss_backward = loss_backward + _l1(mask * carried, mask * frame)
        if i > 0:
            carried = flow_warp(frame, flows_backward[:, i])

    loss_forward, carried = 0, zeros
    for i in range(1, t):  # from the second frame to the last; masks 1 - bwd_occ
        frame, mask = latents[:, i], bwd_valid[:, i - 1]
        loss_forward = loss_forward + _l1(mask * carried, mask * frame)
        if i < t - 1:
            carried = flow_warp(frame, flows_forward[:, i - 1])

    return loss_backward + loss_forward


def _video_layout(
    latents: torch.Tensor,
    flows_forward: torch.Tensor,
    flows_backward: torch.Tensor,
    fwd_occ: torch.Tensor | None,
    bwd_occ: torch.Tensor | None,
):
    """Validate shapes and return latents [B,T,C,h,w], flows, and validity masks [B,T-1,1,h,w] (1 - occ)."""
    for name, flow in (("flows_forward", flows_forward), ("flows_backward", flows_backward)):
        if flow.dim() != 5 or flow.shape[2] != 2:
            raise ValueError(f"{name} must be [B, T-1, 2, h, w], got {tuple(flow.shape)}")
    if flows_forward.shape != flows_backward.shape:
        raise ValueError(
            f"flows_forward {tuple(flows_forward.shape)} and flows_backward {tuple(flows_backward.shape)} differ"
        )
    b, pairs, _, h, w = flows_forward.shape
    t = pairs + 1
    if t < 2:
        raise ValueError("the guidance needs windows of at least 2 frames (flows with T-1 >= 1 pairs)")

    if latents.dim() == 4:
        if latents.shape[0] != b * t:
            raise ValueError(
                f"latents {tuple(latents.shape)} hold {latents.shape[0]} frames but the flows "
                f"{tuple(flows_forward.shape)} describe B={b} videos of T={t} frames ({b * t} rows, video-major)"
            )
        video = latents.reshape(b, t, *latents.shape[1:])
    elif latents.dim() == 5:
        if latents.shape[:2] != (b, t):
            raise ValueError(
                f"latents {tuple(latents.shape)} do not match flows {tuple(flows_forward.shape)}: "
                f"expected B={b}, T={t} (flows carry T-1 pairs)"
            )
        video = latents
    else:
        raise ValueError(f"latents must be [B*T, C, h, w] or [B, T, C, h, w], got {tuple(latents.shape)}")
    if video.shape[-2:] != (h, w):
        raise ValueError(f"latents are {tuple(video.shape[-2:])} spatially but the flows are {(h, w)}")

    def valid(name, occ):
        if occ is None:
            return torch.ones((b, pairs, 1, h, w), device=video.device, dtype=video.dtype)
        if occ.dim() == 4:
            occ = occ.unsqueeze(2)
        if occ.dim() != 5 or occ.shape != (b, pairs, 1, h, w):
            raise ValueError(f"{name} must be [B, T-1, 1, h, w] = {(b, pairs, 1, h, w)}, got {tuple(occ.shape)}")
        return 1 - occ.to(device=video.device, dtype=video.dtype)

    flows_forward = flows_forward.to(video.device)
    flows_backward = flows_backward.to(video.device)
    return video, flows_forward, flows_backward, valid("fwd_occ", fwd_occ), valid("bwd_occ", bwd_occ)


def warping_loss(
    latents: torch.Tensor,
    flows_forward: torch.Tensor,
    flows_backward: torch.Tensor,
    fwd_occ: torch.Tensor | None = None,
    bwd_occ: torch.Tensor | None = None,
    batch_reduction: str = "mean",
) -> torch.Tensor:
    """The official motion-guidance loss for latents [B*T,C,h,w] (video-major) or [B,T,C,h,w].

    ``flows_forward`` [B,T-1,2,h,w] holds RAFT(frame i+1, frame i), ``flows_backward`` RAFT(frame i, frame i+1)
    (the official naming). ``fwd_occ``/``bwd_occ`` [B,T-1,1,h,w] (or without the channel dim) are the
    consistency-check outputs for the pair (i, i+1) with 1 = occluded; None means nothing is occluded.
    T is taken from the flows. Returns a 0-dim tensor; differentiable w.r.t. ``latents``.
    """
    video, ff, fb, mf, mb = _video_layout(latents, flows_forward, flows_backward, fwd_occ, bwd_occ)
    return official_warping_loss(video, ff, fb, mf, mb, batch_reduction=batch_reduction)


def warping_loss_and_grad(
    latents: torch.Tensor,
    flows_forward: torch.Tensor,
    flows_backward: torch.Tensor,
    fwd_occ: torch.Tensor | None = None,
    bwd_occ: torch.Tensor | None = None,
    batch_reduction: str = "mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L, dL/dlatents)``, both detached; works under ``torch.no_grad()``.

    Half-precision latents are evaluated in float32 (the loss averages ~1e5 values and the step
    multiplies the gradient by up to ~460); the gradient is returned in that working precision.
    """
    work = torch.promote_types(latents.dtype, torch.float32)
    with torch.inference_mode(False), torch.enable_grad():
        latents, flows_forward, flows_backward, fwd_occ, bwd_occ = _grad_ready(
            latents, flows_forward, flows_backward, fwd_occ, bwd_occ)
        x = latents.detach().to(work).requires_grad_(True)
        loss = warping_loss(x, flows_forward, flows_backward, fwd_occ, bwd_occ, batch_reduction=batch_reduction)
        (grad,) = torch.autograd.grad(loss, x)
    return loss.detach(), grad


def motion_guidance_step(
    latents: torch.Tensor,
    schedule: RespacedSchedule,
    j: int,
    flows_forward: torch.Tensor,
    flows_backward: torch.Tensor,
    fwd_occ: torch.Tensor | None = None,
    bwd_occ: torch.Tensor | None = None,
    strength: float = OFFICIAL_STRENGTH,
    batch_reduction: str = "mean",
    return_loss: bool = False,
):
    """Apply the guidance of respaced step ``j``: ``x - (-strength) * logvar_j * dL/dx``.

    ``latents`` are the post-noise latents x' of step j ([B*T,C,h,w] or [B,T,C,h,w]); the result has
    their shape and dtype. ``strength = 10`` is the official setting; ``strength = 0`` returns
    ``latents`` itself without evaluating the loss. With ``return_loss=True`` returns ``(latents', L)``
    (``L`` is None when strength is 0).
    """
    strength = float(strength)
    if not math.isfinite(strength) or strength < 0:
        raise ValueError(f"guidance strength must be a finite number >= 0, got {strength}")
    logvar = schedule.log_variance(j)
    if strength == 0:
        return (latents, None) if return_loss else latents
    loss, grad = warping_loss_and_grad(latents, flows_forward, flows_backward, fwd_occ, bwd_occ, batch_reduction)
    # Same association as the official code: (scale * logvar) first, then times the gradient.
    step = (-strength) * logvar.to(device=grad.device, dtype=grad.dtype)
    out = (latents.detach().to(grad.dtype) - step * grad).to(latents.dtype)
    return (out, loss) if return_loss else out


def aligned_warping_loss(latents: torch.Tensor, flows_forward: torch.Tensor, flows_backward: torch.Tensor,
                         fwd_occ: torch.Tensor, bwd_occ: torch.Tensor, pair_weights: torch.Tensor) -> torch.Tensor:
    """The paper's warping error over every neighbouring pair of a clip ``latents [N,C,h,w]``.

    For pair i: frame i+1 warped onto frame i's grid with the i->i+1 flow, compared with frame i
    where ``1 - fwd_occ[i]``; and frame i warped onto frame i+1's grid with the i+1->i flow,
    compared with frame i+1 where ``1 - bwd_occ[i]``. Unlike the released loss, flows and frames
    are not shifted and no frame is pulled towards zero. ``pair_weights [N-1]`` switches pairs off
    (0 across scene cuts).

    Each term is a sum of absolute errors divided by a *fixed* area, ``C * GUIDANCE_REFERENCE_AREA``
    (one official 960-px image tile), not a mean over the frame. Why: the gradient of a mean
    shrinks as the frame grows, so one strength would mean a strong step at 512 px and almost none
    at 4K. With a fixed divisor every latent pixel's step depends only on its own neighbourhood:
    the same strength gives the same per-pixel step at any resolution and clip length, and it is
    exactly the official mode's step wherever one full official tile covers the frame (a 960-px
    frame), which is also the official step inside each tile of any larger frame. (Official mode
    on frames smaller than one tile averages over the smaller frame, so its step grows there;
    default mode keeps the calibrated one.)
    """
    if latents.shape[0] < 2:
        return latents.new_zeros(())
    here, there = latents[:-1], latents[1:]
    weights = pair_weights.to(latents.dtype).view(-1, 1, 1, 1)
    keep_here = (1 - fwd_occ.to(latents.dtype)) * weights
    keep_there = (1 - bwd_occ.to(latents.dtype)) * weights
    area = latents.shape[1] * GUIDANCE_REFERENCE_AREA
    backward = (keep_here * (flow_warp(there, flows_backward) - here)).abs().sum() / area
    forward = (keep_there * (flow_warp(here, flows_forward) - there)).abs().sum() / area
    return backward + forward


@dataclasses.dataclass(frozen=True)
class GuidanceChunk:
    """A unit of the clip-wide guidance: frames ``a..b`` (the motion of their pairs comes with the networks)."""

    latents: torch.Tensor  # [b-a+1, 4, h, w]
    a: int
    b: int
    work: torch.dtype


MOTION_FIELDS = ("flows_forward", "flows_backward", "fwd_occ", "bwd_occ", "cuts")


def guidance_chunk(networks, unit: GuidanceChunk) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gradient of the warping loss of pairs a..b-1 w.r.t. frames a..b, the loss)``, computed on
    ``networks["device"]`` from the clip's motion tensors in ``networks``."""
    device = networks["device"].device
    parts = [networks[name][unit.a:unit.b].to(device) for name in MOTION_FIELDS]
    with torch.inference_mode(False), torch.enable_grad():
        frames, ff, fb, fwd_occ, bwd_occ, cuts = _grad_ready(unit.latents.to(device), *parts)
        x = frames.detach().to(unit.work).requires_grad_(True)
        part = aligned_warping_loss(x, ff, fb, fwd_occ, bwd_occ, (~cuts).to(unit.work))
        (part_grad,) = torch.autograd.grad(part, x)
    return part_grad, part.detach()


def clip_guidance_step(latents: torch.Tensor, schedule: RespacedSchedule, j: int, motion, strength: float = OFFICIAL_STRENGTH,
                       *, device: torch.device | None = None, pairs_per_chunk: int | None = None, executor=None):
    """Guidance of respaced step ``j`` on a whole clip (windows and their seams alike), no pair across a cut.

    ``motion`` is a :class:`~.motion.MotionField` on the latent grid. Returns ``(latents', loss)``.
    The loss is a sum of per-pair terms, so its gradient can be built ``pairs_per_chunk`` pairs at a
    time (neighbouring chunks share one frame, whose two contributions are added): the autograd
    graph, and on ``device`` the memory, then cover a chunk instead of the clip. ``None`` = one chunk.
    Clip-long latents may live in host RAM while each chunk is computed on the accelerator.
    ``executor`` (default: this process, on ``device``) computes the chunks; they are added here in order.
    """
    from ..workers.executor import DEVICE, LOCAL, device_marker

    strength = float(strength)
    if not math.isfinite(strength) or strength < 0:
        raise ValueError(f"guidance strength must be a finite number >= 0, got {strength}")
    n = latents.shape[0]
    if strength == 0 or n < 2:
        return latents, None
    if pairs_per_chunk is not None and pairs_per_chunk < 1:
        raise ValueError(f"pairs_per_chunk must be >= 1, got {pairs_per_chunk}")
    work = torch.promote_types(latents.dtype, torch.float32)
    device = latents.device if device is None else torch.device(device)
    chunk = n - 1 if pairs_per_chunk is None else pairs_per_chunk
    grad = torch.zeros(latents.shape, dtype=work, device=latents.device)
    loss = torch.zeros((), dtype=work, device=latents.device)
    bounds = [(a, min(a + chunk, n - 1)) for a in range(0, n - 1, chunk)]  # pairs a..b-1 join frames a..b
    units = (GuidanceChunk(latents[a:b + 1], a, b, work) for a, b in bounds)
    networks = {DEVICE: device_marker(device), **{name: getattr(motion, name) for name in MOTION_FIELDS}}
    for (a, b), (part_grad, part) in zip(bounds, (executor or LOCAL).map(guidance_chunk, units, networks)):
        grad[a:b + 1] += part_grad.to(grad.device)
        loss += part.to(loss.device)
    step = (-strength) * schedule.log_variance(j).to(device=grad.device, dtype=work)
    return (latents.detach().to(work) - step * grad).to(latents.dtype), loss
