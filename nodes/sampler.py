"""Sampler node: motion-guided temporal diffusion of the whole clip -> LATENT."""
from __future__ import annotations

import torch

from .. import host
from ..pipeline.frames import LRPlan
from ..pipeline.official import official_sample
from ..pipeline.video import SamplingOptions, sample_video
from .common import (CATEGORY, LOCAL_DEVICES, MEMORY_BUDGET_TOOLTIP, devices_input, devices_problem, image_to_frames,
                     stage_executor)


def sampling_reserve(networks, frames, scale, tile, window) -> int:
    """Bytes to free on the device for sampling: weights + the estimated peak of one tile (for ComfyUI's manager)."""
    from ..pipeline.budget import fit_sampling

    plan = LRPlan.create(frames.shape[1], frames.shape[2], scale)
    options = SamplingOptions(tile=min(tile, *(side - side % 8 for side in plan.latent_size)), window=window)
    return fit_sampling(*networks, plan, frames.shape[0], options, float("inf")).peak_bytes

MODES = ["default", "official"]
OFFICIAL_TILE_OVERLAP = 32  # the official script's --tile_overlap default


class MGLDSampler:
    DESCRIPTION = ("MGLD-VSR sampling: a respaced DDPM with the temporal SD2.1 UNet conditioned on the LR video, with "
                   "a motion-guidance step after every denoising step. 'default' blends overlapping windows and guides "
                   "across them; 'official' reproduces the official script (disjoint 5-frame segments).")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("Clean latents of every frame (SD2.1 latent space), for the MGLD decoder.",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MGLD_DIFFUSION", {"tooltip": "From the MGLD diffusion model loader."}),
            "frames": ("IMAGE", {"tooltip": "The LR video frames."}),
            "flow": ("MGLD_FLOW", {"tooltip": "From the MGLD flow + occlusion node, computed on the same frames."}),
            "steps": ("INT", {"default": 50, "min": 1, "max": 1000,
                              "tooltip": "DDPM steps (respaced from 1000). The paper uses 50."}),
            "guidance_strength": ("FLOAT", {"default": 10.0, "min": 0.0, "max": 100.0, "step": 0.5,
                                            "tooltip": "Motion guidance strength (official 10). 0 turns guidance off."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                             "tooltip": "Noise seed: the same seed and inputs give the same video on any device."}),
            "scale": ("FLOAT", {"default": 4.0, "min": 1.0, "max": 8.0, "step": 0.5,
                                "tooltip": "Upscale factor (the model is trained for x4). Short LR sides are upsampled "
                                           "to at least 512 px internally and shrunk back."}),
            "mode": (MODES, {"default": "default", "tooltip": "default: seamless overlapping windows, scene cuts, exact "
                                                              "frame count. official: the official script's numbers."}),
            "window": ("INT", {"default": 5, "min": 2, "max": 16,
                               "tooltip": "Frames per temporal window (the model was trained on 5). default mode only."}),
            "window_overlap": ("INT", {"default": 0, "min": 0, "max": 15,
                                       "tooltip": "0 (recommended): disjoint windows whose borders move every step, each "
                                                  "frame denoised once per step. >0: fixed windows sharing this many "
                                                  "frames, blended every step (slower). default mode only."}),
            "tile_size": ("INT", {"default": 64, "min": 8, "max": 256, "step": 8,
                                  "tooltip": "Latent tile side (x8 pixels); any resolution is covered by Gaussian-blended tiles."}),
            "tile_overlap": ("INT", {"default": 0, "min": 0, "max": 248, "step": 8,
                                     "tooltip": "0 (recommended in default mode): disjoint tiles whose borders move every "
                                                "step, each latent pixel denoised once per step. >0: fixed tiles "
                                                "overlapping by this much, Gaussian-blended (official: 32; ~3x the work "
                                                "at 1080p). official mode: 0 means the script's 32."}),
        }, "optional": {
            "memory_budget_gb": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1024.0, "step": 0.5,
                                           "tooltip": MEMORY_BUDGET_TOOLTIP}),
            "devices": devices_input(),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, devices=LOCAL_DEVICES):
        return devices_problem("MGLD Sampler", devices)

    def sample(self, model, frames, flow, steps, guidance_strength, seed, scale, mode, window, window_overlap,
               tile_size, tile_overlap, memory_budget_gb=0.0, devices=LOCAL_DEVICES):
        frames = image_to_frames(frames)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if flow.num_frames != frames.shape[0]:
            raise ValueError(f"the flow was computed on {flow.num_frames} frames but the sampler got {frames.shape[0]}: "
                             "connect the same frames to the flow node and the sampler")
        if tuple(frames.shape[1:3]) != flow.plan.lr_size:
            raise ValueError(f"the flow was computed on {flow.plan.lr_size[0]}x{flow.plan.lr_size[1]} frames but the "
                             f"sampler got {frames.shape[1]}x{frames.shape[2]}")
        context = model.require_context()
        hooks = host.hooks()
        networks = (model.unet, model.lr_encoder, model.first_stage)
        if mode == "official" and devices != LOCAL_DEVICES:
            hooks.notice("MGLD Sampler: official mode runs in this process (devices applies to the default mode)")
            devices = LOCAL_DEVICES
        reserve = lambda: sampling_reserve(networks, frames, scale, tile_size, window)  # noqa: E731
        with torch.no_grad(), stage_executor("MGLD Sampler", devices, *networks, reserve=reserve) as executor:
            if mode == "official":
                if float(scale) != flow.plan.scale:
                    raise ValueError(f"official mode upsamples x{flow.plan.scale:g} like the official script; set scale to "
                                     f"{flow.plan.scale:g} or use the default mode")
                result = official_sample(frames, flow, **model.networks(), context=context, steps=steps,
                                         strength=guidance_strength, seed=seed, tile_overlap=tile_overlap or OFFICIAL_TILE_OVERLAP,
                                         hooks=hooks)
                samples = torch.cat([seg[0].samples for seg in result.tiles])[: frames.shape[0]].cpu()
            else:
                plan = LRPlan.create(frames.shape[1], frames.shape[2], scale)
                options = SamplingOptions(steps=steps, strength=guidance_strength, seed=seed, window=window,
                                          window_overlap=window_overlap, tile=tile_size, tile_overlap=tile_overlap,
                                          memory_budget_gb=memory_budget_gb)
                result = sample_video(frames, flow.motion_for(plan), plan, **model.networks(), context=context,
                                      options=options, hooks=hooks, executor=executor,
                                      checkpoint=host.sampling_checkpoint())
                result.latents = result.latents.cpu()
                samples = result.latents
        return ({"samples": samples, "mgld": result},)
