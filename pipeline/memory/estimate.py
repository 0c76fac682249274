"""Accelerator memory of each pipeline stage, counted exactly on storage-free (meta) copies of the models.

Why count instead of asking the device: the pack must choose tile sizes *before* it runs out of
memory, on any device (and on machines with no GPU at all), and an allocator's statistics only
tell afterwards. :class:`LiveTensorBytes` counts the bytes of every live tensor storage while a
stage runs; run on ``meta`` tensors, a full-size model costs no memory and a second or two, yet
the count equals what an accelerator holds for weights + activations, minus allocator overhead
(caching, fragmentation, kernel workspaces), the CUDA context and library workspaces (cuBLAS,
cuDNN), which the count cannot see. Attention is counted as it will run on the device the models
compute on (``models.attention.planned_for``): one fused kernel's output where SDPA takes a fused
kernel there, the math fallback's score matrix (bounded by ``SCORE_CHUNK_BYTES``) elsewhere.

The ``*_peak`` estimators take the real loaded modules (only their class and ``config`` are read),
build meta copies in the requested dtype and return the peak bytes of one unit of their stage as
the pipeline runs it. Results are cached per (stage, module class, config, dtype, geometry).
"""
from __future__ import annotations

import dataclasses
import weakref
from typing import Callable, Iterable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ...models.attention import planned_device, planned_for
from ...models.placement import compute_device
from ..defaults import LATENT_SCALE, OFFICIAL_GUIDANCE_STRENGTH, OFFICIAL_STEPS

#: Bytes in a GiB (binary, as memory is usually reported); budgets in GB (1e9) are the caller's choice.
GiB = 2 ** 30

#: Length of the text context the UNet cross-attends to (OpenCLIP's 77 tokens).
_CONTEXT_TOKENS = 77


class LiveTensorBytes(TorchDispatchMode):
    """Running and peak bytes of the tensor storages alive while the mode is active.

    Every storage an operator creates is added when it appears and removed when the last tensor
    using it is freed; views add nothing, as they share their base's storage. Tensors made outside
    the mode (weights, inputs) count once passed to :meth:`track`.
    """

    def __init__(self, baseline: int = 0, device: str | None = None):
        """``device`` (a device type such as ``"meta"`` or ``"cuda"``) counts only storages there, e.g. an
        accelerator's share of a stage that also keeps tensors in host RAM; ``None`` counts every storage."""
        super().__init__()
        self.device = device
        self.current = self.peak = baseline
        self._seen: dict[int, weakref.ref] = {}  # id(tensor) -> weak reference (tensors do not hash by identity)
        self._storages: dict[int, list[int]] = {}  # storage id -> [tracked tensors using it, bytes]

    def track(self, *tensors_or_modules) -> int:
        """Count tensors created outside the mode (weights, inputs) as live; returns the bytes added."""
        added = 0
        for item in tensors_or_modules:
            tensors = list(item.parameters()) + list(item.buffers()) if isinstance(item, nn.Module) else [item]
            for t in tensors:
                added += self._add(t)
        return added

    def _add(self, t: torch.Tensor) -> int:
        if not isinstance(t, torch.Tensor) or (self.device is not None and t.device.type != self.device):
            return 0
        known = self._seen.get(id(t))
        if known is not None and known() is t:
            return 0
        self._seen[id(t)] = weakref.ref(t)
        storage = t.untyped_storage()
        key = storage._cdata
        weakref.finalize(t, self._release, key, id(t))
        if key in self._storages:
            self._storages[key][0] += 1
            return 0
        size = storage.nbytes()
        self._storages[key] = [1, size]
        self.current += size
        self.peak = max(self.peak, self.current)
        return size

    def _release(self, key: int, tensor_id: int) -> None:
        self._seen.pop(tensor_id, None)
        entry = self._storages[key]
        entry[0] -= 1
        if entry[0] == 0:
            self.current -= entry[1]
            del self._storages[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t)
        return out


def measure(models: Iterable[nn.Module], run: Callable[[], object]) -> tuple[int, int]:
    """``(weight bytes, peak bytes)`` of ``run()`` with ``models`` resident, gradients off.

    ``run`` must create its inputs itself (inside the count) and drop everything it returns:
    the peak includes the inputs, every activation and the models' parameters and buffers.
    Inference mode is switched off for the count: under it composite operators such as SDPA reach
    the counter undecomposed, their temporaries unseen, and the same stage would count less in a
    ComfyUI node (which runs under inference mode) than in a script.
    """
    with torch.inference_mode(False), torch.no_grad(), LiveTensorBytes() as mem:
        weights = mem.track(*models)
        run()
    return weights, mem.peak


# ---------------------------------------------------------------------------------------------
# Meta copies and the cache
# ---------------------------------------------------------------------------------------------

_CACHE: dict[tuple, int] = {}
_META_COPIES: dict[tuple, nn.Module] = {}
#: One of each model of the pipeline, plus a dtype change.
_META_COPIES_KEPT = 8


def _component_name(module: nn.Module) -> str | None:
    """The loader's component name for ``module``'s class (``None`` for classes it does not know)."""
    from ...models.loader import COMPONENTS

    cls = type(module)
    for name, comp in COMPONENTS.items():
        if comp.model_class == cls.__name__ and cls.__module__.endswith("." + comp.module):
            return name
    return None


def meta_copy(module: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    """A storage-free copy of ``module`` built from its ``config`` (in ``dtype`` unless None), eval, no grad.

    Copies are kept (a few, most recent) because building the full-size UNet takes about 0.3 s and
    the sampler asks for several tile sizes in a row; meta parameters hold no memory (each count
    leaves small finalizer records on them, freed with the copy).
    """
    from ...models.loader import build_empty

    config = getattr(module, "config", None)
    if config is None:
        raise TypeError(f"{type(module).__name__} has no .config: memory can only be estimated for the pack's models")
    key = (type(module), _config_key(config), dtype)
    copy = _META_COPIES.pop(key, None)
    if copy is None:
        name = _component_name(module)
        if name is not None:
            copy = build_empty(name, config)
        else:
            with torch.device("meta"):
                copy = type(module)(config)
        if dtype is not None:
            copy = copy.to(dtype)
        copy = copy.eval().requires_grad_(False)
    _META_COPIES[key] = copy  # (re)inserted last: the dict's order is the recency order
    while len(_META_COPIES) > _META_COPIES_KEPT:
        del _META_COPIES[next(iter(_META_COPIES))]
    return copy


def _config_key(config) -> object:
    """A hashable stand-in for a config (some config dataclasses are mutable, hence unhashable)."""
    if dataclasses.is_dataclass(config):
        return (type(config).__qualname__, repr(config))
    return repr(config)


def _cached(stage: str, modules: tuple[nn.Module, ...], dtype, geometry: tuple, compute: Callable[[], int]) -> int:
    """The estimate for ``modules`` on the device they compute on (or the one an enclosing
    ``planned_for`` names): attention there decides whether a score matrix is counted."""
    device = planned_device() or (compute_device(modules[0]).type if modules else "cpu")
    key = (stage, tuple((type(m).__module__, type(m).__qualname__, _config_key(getattr(m, "config", None))) for m in modules),
           dtype, geometry, device)
    if key not in _CACHE:
        with planned_for(device):
            _CACHE[key] = int(compute())
    return _CACHE[key]


def clear_cache() -> None:
    """Forget every estimate and meta copy (for tests and after configs change in place)."""
    _CACHE.clear()
    _META_COPIES.clear()


# ---------------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------------

def sampling_peak(unet, lr_encoder, frames: int, tile_h: int, tile_w: int, dtype: torch.dtype) -> int:
    """Peak bytes of one denoising evaluation of one ``tile_h x tile_w`` latent tile of a
    ``frames``-frame window: the LR encoder on the LR-latent tile, then the UNet, as the sampler's
    ``predict_eps`` calls them (one tile per batch), with both models' weights in ``dtype``.

    Counted: the float32 tile crops, their casts, the text context, the LR features, every UNet
    activation and the float32 noise prediction. Not counted: whole-window canvases (the latents,
    the blend accumulators), which the caller adds for its own canvas size.
    """

    def compute() -> int:
        unet_m, enc_m = meta_copy(unet, dtype), meta_copy(lr_encoder, dtype)
        meta = dict(device="meta")

        def run():
            latent = torch.empty(frames, unet_m.config.in_channels, tile_h, tile_w, dtype=torch.float32, **meta)
            lr_latent = torch.empty(frames, enc_m.config.in_channels, tile_h, tile_w, dtype=torch.float32, **meta)
            t = torch.empty(1, dtype=torch.long, **meta)
            context = torch.empty(1, _CONTEXT_TOKENS, unet_m.config.context_dim, dtype=dtype, **meta)
            noisy = latent.to(dtype)
            cond = enc_m(lr_latent.to(dtype), t)
            eps = unet_m(noisy, t, context, cond, frames).float()
            return eps

        return measure([unet_m, enc_m], run)[1]

    return _cached("sampling", (unet, lr_encoder), dtype, (frames, tile_h, tile_w), compute)


def guidance_peak(frames: int, height: int, width: int) -> int:
    """Peak bytes of one motion-guidance chunk of ``frames`` float32 latents on a ``height x width``
    latent grid, its inputs (latents, flows, occlusion masks) and autograd graph included."""

    def compute() -> int:
        from ..sampling.guidance import clip_guidance_step
        from ..motion.field import MotionField
        from ..sampling.schedule import respaced_schedule

        schedule = respaced_schedule(OFFICIAL_STEPS)  # any schedule and non-zero strength cost the same

        def run():
            x = torch.empty(frames, 4, height, width, device="meta")
            pair = lambda c: torch.empty(frames - 1, c, height, width, device="meta")  # noqa: E731
            cuts = torch.zeros(frames - 1, dtype=torch.bool, device="meta")
            return clip_guidance_step(x, schedule, schedule.steps // 2, MotionField(pair(2), pair(2), pair(1), pair(1), cuts),
                                      OFFICIAL_GUIDANCE_STRENGTH)

        return measure([], run)[1]

    return _cached("guidance", (), None, (frames, height, width), compute)


def encode_peak(first_stage, frames: int, height: int, width: int, dtype: torch.dtype) -> int:
    """Peak bytes of the VAE first-stage encode of ``frames`` prepared frames of ``height x width``
    pixels (the model-input size, i.e. upsampled and padded), including the posterior sample and
    its scaling to a float32 diffusion latent, with the encoder's weights in ``dtype``."""

    def compute() -> int:
        model = meta_copy(first_stage, dtype)
        z = model.config.embed_dim

        def run():
            pixels = torch.empty(frames, model.config.encoder.in_channels, height, width, dtype=dtype, device="meta")
            draws = torch.empty(frames, z, height // 8, width // 8, device="meta")
            posterior = model.encode(pixels)
            return LATENT_SCALE * posterior.sample(noise=draws).float()

        return measure([model], run)[1]

    return _cached("encode", (first_stage,), dtype, (frames, height, width), compute)


def decode_peak(video_vae, frames: int, tile_h: int, tile_w: int, dtype: torch.dtype) -> int:
    """Peak bytes of the CFW decode of one spatial tile (``tile_h x tile_w`` latent pixels, 8x that
    in output pixels) of a ``frames``-frame window, as the default decoder does per tile: the video
    VAE encodes the LR tile for its CFW features, decodes the latent tile against them, and the
    float32 result is weighted for blending. Weights in ``dtype``.

    The LR tile is counted as a tensor of its own (in the pipeline it may be a view of the
    window's LR frames, which the caller counts with the other whole-window tensors).
    """

    def compute() -> int:
        model = meta_copy(video_vae, dtype)
        config = model.config
        meta = dict(device="meta")

        def run():
            lr = torch.empty(frames, config.encoder.in_channels, 8 * tile_h, 8 * tile_w, dtype=dtype, **meta)
            z = torch.empty(frames, config.embed_dim, tile_h, tile_w, dtype=dtype, **meta)
            posterior, features = model.encode(lr)
            part = model.decode(z / LATENT_SCALE, features, 1.0).float()
            weight = torch.empty(8 * tile_h, 8 * tile_w, **meta)
            return posterior, part * weight

        return measure([model], run)[1]

    return _cached("decode", (video_vae,), dtype, (frames, tile_h, tile_w), compute)


def flow_peak(raft, pairs: int, height: int, width: int) -> int:
    """Peak bytes of one RAFT call on ``pairs`` frame pairs of ``height x width`` (the RAFT input
    size), in float32 as the pipeline always runs it: the all-pairs correlation volume grows with
    (height*width/64)^2 per pair and dominates at large sizes."""

    def compute() -> int:
        model = meta_copy(raft, torch.float32)

        def run():
            first = torch.empty(pairs, 3, height, width, device="meta")
            second = torch.empty(pairs, 3, height, width, device="meta")
            return model(first, second)

        return measure([model], run)[1]

    return _cached("flow", (raft,), torch.float32, (pairs, height, width), compute)
