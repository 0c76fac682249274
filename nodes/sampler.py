"""Sampler nodes: motion-guided temporal diffusion of the whole clip -> MGLD_LATENT.

Two nodes, one per mode, so that every widget a node shows is used: the default mode's windows and
tiles are free, while the official script fixes them. Their output is a type of its own: SD latents
plus the clip layout, which core latent nodes or a core VAE Decode would silently misread.
"""
from __future__ import annotations

import torch

from . import host
from ..pipeline import defaults
from ..pipeline.memory.footprint import check_fits, clip_footprint
from ..pipeline.frames import MIN_SHORT_SIDE, LRPlan
from ..pipeline.official import official_sample
from ..pipeline.sampling.loop import SamplingOptions, sample_video
from ..pipeline.sampling.schedule import TRAIN_TIMESTEPS
from .common import (LOCAL_DEVICES, MEMORY_BUDGET_TOOLTIP, SAMPLING, devices_input, image_to_frames,
                     on_compute_device, stage_executor)
from .validation import comfy_verdict


def sampling_reserve(networks, frames, scale, tile, window) -> int:
    """Bytes to free on the device for sampling: weights + the estimated peak of one tile (for ComfyUI's manager)."""
    from ..pipeline.memory.budget import fit_sampling

    plan = LRPlan.create(frames.shape[1], frames.shape[2], scale)
    options = SamplingOptions(tile=min(tile, plan.largest_tile), window=window)
    return fit_sampling(*networks, plan, frames.shape[0], options, float("inf")).peak_bytes


LATENT_TYPE = "MGLD_LATENT"
LATENT_TOOLTIP = ("Clean latents of every frame with the clip layout (frames, windows, padding) the MGLD decoder "
                  "needs. Its own type on purpose: core latent nodes and VAE Decode cannot use it correctly, so "
                  "they cannot be connected.")


def _common_inputs(guidance_tooltip: str) -> dict:
    """The inputs both samplers share, in the order both declare them."""
    return {
        "model": ("MGLD_DIFFUSION", {"tooltip": "From the MGLD diffusion model loader."}),
        "frames": ("IMAGE", {"tooltip": "The LR video frames."}),
        "flow": ("MGLD_FLOW", {"tooltip": "From the MGLD flow + occlusion node, computed on the same frames."}),
        "steps": ("INT", {"default": defaults.OFFICIAL_STEPS, "min": 1, "max": TRAIN_TIMESTEPS,
                          "tooltip": f"DDPM steps (respaced from {TRAIN_TIMESTEPS}). The paper uses "
                                     f"{defaults.OFFICIAL_STEPS}."}),
        "guidance_strength": ("FLOAT", {"default": defaults.OFFICIAL_GUIDANCE_STRENGTH, "min": 0.0, "max": 100.0,
                                        "step": 0.5,
                                        "tooltip": guidance_tooltip}),
    }


def _check_flow(frames: torch.Tensor, flow) -> None:
    if flow.num_frames != frames.shape[0]:
        raise ValueError(f"the flow was computed on {flow.num_frames} frames but the sampler got {frames.shape[0]}: "
                         "connect the same frames to the flow node and the sampler")
    if tuple(frames.shape[1:3]) != flow.plan.lr_size:
        raise ValueError(f"the flow was computed on {flow.plan.lr_size[0]}x{flow.plan.lr_size[1]} frames but the "
                         f"sampler got {frames.shape[1]}x{frames.shape[2]}")


class MGLDSampler:
    DESCRIPTION = ("MGLD-VSR sampling (the recommended default mode): a respaced DDPM with the temporal SD2.1 UNet "
                   "conditioned on the LR video, with a motion-guidance step on the whole clip after every denoising "
                   "step. Windows and tiles of any size, scene cuts, exactly N frames out for N in. For the official "
                   "script's numbers use MGLD Sampler (official script).")
    CATEGORY = SAMPLING
    RETURN_TYPES = (LATENT_TYPE,)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = (LATENT_TOOLTIP,)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **_common_inputs(f"Motion guidance strength (official {defaults.OFFICIAL_GUIDANCE_STRENGTH:g}): the same "
                             "step per latent pixel at any resolution and clip length. 0 turns guidance off."),
            "seed": ("INT", {"default": defaults.SEED, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                             "control_after_generate": True,
                             "tooltip": "Noise seed: the same seed draws the same noise on any device (results "
                                        "can still differ slightly: devices round differently)."}),
            "scale": ("FLOAT", {"default": defaults.OFFICIAL_SCALE, "min": defaults.MIN_SCALE,
                                "max": defaults.MAX_SCALE, "step": 0.5,
                                "tooltip": f"Upscale factor (the model is trained for x{defaults.OFFICIAL_SCALE:g}). "
                                           f"Short LR sides are upsampled to at least {MIN_SHORT_SIDE} px internally "
                                           "and shrunk back."}),
            "window": ("INT", {"default": defaults.OFFICIAL_WINDOW, "min": 2, "max": 16,
                               "tooltip": f"Frames per temporal window (the model was trained on "
                                          f"{defaults.OFFICIAL_WINDOW})."}),
            "window_overlap": ("INT", {"default": defaults.WINDOW_OVERLAP, "min": 0, "max": 15,
                                       "tooltip": "0 (recommended): disjoint windows whose borders move every step, each "
                                                  "frame denoised once per step. >0: fixed windows sharing this many "
                                                  "frames, blended every step (slower)."}),
            "tile_size": ("INT", {"default": defaults.OFFICIAL_LATENT_TILE, "min": defaults.LATENT_TILE_STEP,
                                  "max": 256, "step": defaults.LATENT_TILE_STEP,
                                  "tooltip": "Latent tile side (x8 pixels); any resolution is covered by tiles."}),
            "tile_overlap": ("INT", {"default": defaults.TILE_OVERLAP, "min": 0, "max": 248,
                                     "step": defaults.LATENT_TILE_STEP,
                                     "tooltip": "0 (recommended): disjoint tiles whose borders move every step, each "
                                                "latent pixel denoised once per step. >0: fixed tiles overlapping by "
                                                "this much, Gaussian-blended (the official grid uses "
                                                f"{defaults.OFFICIAL_LATENT_TILE_OVERLAP}; ~3x the work at 1080p)."}),
        }, "optional": {
            "memory_budget_gb": ("FLOAT", {"default": defaults.MEMORY_BUDGET_GB, "min": 0.0, "max": 1024.0, "step": 0.5,
                                           "tooltip": MEMORY_BUDGET_TOOLTIP}),
            "devices": devices_input(),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, steps=None, guidance_strength=None, seed=None, scale=None, window=None,
                        window_overlap=None, tile_size=None, tile_overlap=None, memory_budget_gb=None, devices=None):
        return comfy_verdict(cls, steps=steps, guidance_strength=guidance_strength, seed=seed, scale=scale,
                             window=window, window_overlap=window_overlap, tile_size=tile_size,
                             tile_overlap=tile_overlap, memory_budget_gb=memory_budget_gb, devices=devices)

    def sample(self, model, frames, flow, steps, guidance_strength, seed, scale, window, window_overlap,
               tile_size, tile_overlap, memory_budget_gb=defaults.MEMORY_BUDGET_GB, devices=LOCAL_DEVICES):
        frames = image_to_frames(frames)
        check_fits(clip_footprint(frames.shape[0], LRPlan.create(frames.shape[1], frames.shape[2], scale),
                                  window=window).only("latents", "a "), host.compute_device(),
                   f"MGLD Sampler: {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]} at x{scale:g}",
                   "sample fewer frames, lower the scale or use smaller frames")
        _check_flow(frames, flow)
        context = model.require_context()
        hooks = host.hooks()
        networks = (model.unet, model.lr_encoder, model.first_stage)
        reserve = lambda: sampling_reserve(networks, frames, scale, tile_size, window)  # noqa: E731
        with torch.no_grad(), stage_executor("MGLD Sampler", devices, *networks, reserve=reserve) as executor:
            plan = LRPlan.create(frames.shape[1], frames.shape[2], scale)
            options = SamplingOptions(steps=steps, strength=guidance_strength, seed=seed, window=window,
                                      window_overlap=window_overlap, tile=tile_size, tile_overlap=tile_overlap,
                                      memory_budget_gb=memory_budget_gb)
            result = sample_video(frames, flow.motion_for(plan), plan, **model.networks(), context=context,
                                  options=options, hooks=hooks, executor=executor,
                                  checkpoint=host.sampling_checkpoint())
            result.latents = result.latents.cpu()
        return (result,)


class MGLDSamplerOfficial:
    DESCRIPTION = ("The official MGLD-VSR inference script's sampling, quirks included, to reproduce published numbers: "
                   f"disjoint {defaults.OFFICIAL_WINDOW}-frame segments (the tail padded by repeating the last frame), "
                   f"x{defaults.OFFICIAL_SCALE:g} with +{defaults.OFFICIAL_PAD_MULTIPLE} padding, "
                   f"{defaults.OFFICIAL_IMAGE_TILE}/{defaults.OFFICIAL_IMAGE_TILE_STRIDE}-px image tiles re-seeded per "
                   "tile, "
                   f"{defaults.OFFICIAL_LATENT_TILE}-px latent tiles, the released guidance loss. Every widget here is "
                   "used; window and tile sizes are the script's and cannot be changed.")
    CATEGORY = SAMPLING
    RETURN_TYPES = (LATENT_TYPE,)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = (LATENT_TOOLTIP + " The MGLD decoder decodes it the official way (per image tile, 8-bit).",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **_common_inputs(f"The script's motion guidance scale ({defaults.OFFICIAL_GUIDANCE_STRENGTH:g} by "
                             "default). 0 turns guidance off."),
            "seed": ("INT", {"default": defaults.OFFICIAL_SEED, "min": 0, "max": 0xFFFFFFFF,
                             "control_after_generate": True,
                             "tooltip": f"The script's --seed ({defaults.OFFICIAL_SEED} by default); it re-seeds "
                                        "before every image tile."}),
            # Overlaps up to one step below the script's tile side (the same rule as the default mode's).
            "tile_overlap": ("INT", {"default": defaults.OFFICIAL_LATENT_TILE_OVERLAP, "min": 0,
                                     "max": defaults.OFFICIAL_LATENT_TILE - defaults.LATENT_TILE_STEP,
                                     "step": defaults.LATENT_TILE_STEP,
                                     "tooltip": "The script's --tile_overlap: overlap of its "
                                                f"{defaults.OFFICIAL_LATENT_TILE}-px latent tiles, Gaussian-blended "
                                                f"({defaults.OFFICIAL_LATENT_TILE_OVERLAP} by default)."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, steps=None, guidance_strength=None, seed=None, tile_overlap=None):
        return comfy_verdict(cls, steps=steps, guidance_strength=guidance_strength, seed=seed,
                             tile_overlap=tile_overlap)

    def sample(self, model, frames, flow, steps, guidance_strength, seed, tile_overlap):
        frames = image_to_frames(frames)
        _check_flow(frames, flow)
        context = model.require_context()
        networks = (model.unet, model.lr_encoder, model.first_stage)
        with torch.no_grad(), on_compute_device(*networks):
            result = official_sample(frames, flow, **model.networks(), context=context, steps=steps,
                                     strength=guidance_strength, seed=seed, tile_overlap=tile_overlap,
                                     hooks=host.hooks())
        for segment in result.tiles:
            for tile in segment:
                tile.samples = tile.samples.cpu()
        return (result,)
