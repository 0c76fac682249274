"""Decoder node: temporal CFW video VAE + colour fix -> IMAGE."""
from __future__ import annotations

import torch

from .. import host
from ..pipeline.official import COLOR_FIXES, OfficialLatents, official_decode
from ..pipeline.video import VideoLatents, decode_video
from .common import (CATEGORY, LOCAL_DEVICES, MEMORY_BUDGET_TOOLTIP, devices_input, devices_problem, image_to_frames,
                     stage_executor)


class MGLDDecode:
    DESCRIPTION = ("Decodes MGLD latents with the temporal video VAE, fusing features of the LR frames (CFW, weight w), "
                   "then corrects colours against the LR frames.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The super-resolved frames.",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video_vae": ("MGLD_VIDEO_VAE", {"tooltip": "From the MGLD video VAE loader."}),
            "latent": ("LATENT", {"tooltip": "From the MGLD sampler."}),
            "frames": ("IMAGE", {"tooltip": "The same LR frames the sampler got (their features guide the decoder)."}),
            "fusion_w": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                   "tooltip": "CFW fusion weight w: 0 = plain decoder (more generated detail), 1 = full "
                                              "fusion with LR features (more fidelity). The official script's default is 0.5."}),
            "color_fix": (list(COLOR_FIXES), {"default": "adain",
                                              "tooltip": "Match colours to the LR frames: adain (paper), wavelet, or none."}),
            "decode_tile": ("INT", {"default": 768, "min": 0, "max": 4096, "step": 64,
                                    "tooltip": "Decode in spatial tiles of this many output pixels (each keeps the whole "
                                               "temporal window; 64 px feathered overlap) to bound memory at 1080p/4K. "
                                               "0 = whole frames. Default mode only."}),
        }, "optional": {
            "memory_budget_gb": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1024.0, "step": 0.5,
                                           "tooltip": MEMORY_BUDGET_TOOLTIP + " Default mode only."}),
            "devices": devices_input(),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, devices=LOCAL_DEVICES):
        return devices_problem("MGLD Temporal CFW Decode", devices)

    def decode(self, video_vae, latent, frames, fusion_w, color_fix, decode_tile=768, memory_budget_gb=0.0,
               devices=LOCAL_DEVICES):
        frames = image_to_frames(frames)
        result = latent.get("mgld") if isinstance(latent, dict) else None
        if not isinstance(result, (VideoLatents, OfficialLatents)):
            raise ValueError("this LATENT does not come from the MGLD sampler (it lacks the clip layout the decoder needs)")
        count = len(result.latents) if isinstance(result, VideoLatents) else len({i for seg in result.segments for i in seg})
        if count != frames.shape[0]:
            raise ValueError(f"the latent holds {count} frames but {frames.shape[0]} LR frames were given")
        def reserve():
            if not isinstance(result, VideoLatents):
                return 0
            from ..pipeline.budget import fit_decode

            return fit_decode(video_vae, result.plan, decode_tile // 8, float("inf"))[1]

        if isinstance(result, OfficialLatents) and devices != LOCAL_DEVICES:
            host.notify("MGLD Temporal CFW Decode: official latents are decoded in this process (devices applies to "
                        "the default mode)")
            devices = LOCAL_DEVICES
        with torch.no_grad(), stage_executor("MGLD Temporal CFW Decode", devices, video_vae, reserve=reserve) as executor:
            if isinstance(result, OfficialLatents):
                images = official_decode(result, frames, video_vae, dec_w=fusion_w, colorfix=color_fix,
                                         hooks=host.hooks()).float() / 255.0
            else:
                if decode_tile % 64:
                    raise ValueError(f"decode_tile must be a multiple of 64 pixels, got {decode_tile}")
                images = decode_video(result, frames, video_vae, dec_w=fusion_w, colorfix=color_fix,
                                      tile=decode_tile // 8, memory_budget_gb=memory_budget_gb, hooks=host.hooks(),
                                      executor=executor)
        return (images,)
