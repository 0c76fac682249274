"""Decoder node: temporal CFW video VAE + colour fix -> IMAGE."""
from __future__ import annotations

import torch

from . import host
from ..pipeline import defaults
from ..pipeline.memory.footprint import check_fits, clip_footprint
from ..pipeline.decoding.colorfix import COLOR_FIXES
from ..pipeline.official import OfficialLatents, official_decode
from ..pipeline.decoding.cfw import decode_video
from ..pipeline.sampling.loop import VideoLatents
from .common import DECODING, LOCAL_DEVICES, MEMORY_BUDGET_TOOLTIP, devices_input, image_to_frames, stage_executor
from .sampler import LATENT_TYPE
from .validation import check_decode_tile, comfy_verdict


def latents_of(latent, frame_count: int):
    """The sampler's clip result (an ``MGLD_LATENT``), checked against the LR frames it will be decoded with."""
    if not isinstance(latent, (VideoLatents, OfficialLatents)):
        raise ValueError(f"the latent input must come from an MGLD sampler (got {type(latent).__name__}); a core "
                         "LATENT lacks the clip layout the decoder needs")
    if isinstance(latent, VideoLatents):
        count = len(latent.latents)
    else:
        count = len({index for segment in latent.segments for index in segment})
    if count != frame_count:
        raise ValueError(f"the latent holds {count} frames but {frame_count} LR frames were given: connect the "
                         "frames the sampler got")
    return latent


def refuse_official_budget(result, memory_budget_gb: float) -> None:
    """The official decoder has no memory cap: a cap set for it is refused rather than silently ignored."""
    if isinstance(result, OfficialLatents) and memory_budget_gb > 0:
        raise ValueError(f"memory_budget_gb={memory_budget_gb:g}: the official sampler's latents are decoded exactly as "
                         f"the official script does, in its {defaults.OFFICIAL_IMAGE_TILE}-px image tiles, with no "
                         "memory cap; set it to 0 or use "
                         "MGLD Sampler (default mode), whose latents the cap applies to")


class MGLDDecode:
    DESCRIPTION = ("Decodes MGLD latents with the temporal video VAE, fusing features of the LR frames (CFW, weight w), "
                   "then corrects colours against the LR frames.")
    CATEGORY = DECODING
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The super-resolved frames.",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video_vae": ("MGLD_VIDEO_VAE", {"tooltip": "From the MGLD video VAE loader."}),
            "latent": (LATENT_TYPE, {"tooltip": "From an MGLD sampler (default or official script)."}),
            "frames": ("IMAGE", {"tooltip": "The same LR frames the sampler got (their features guide the decoder)."}),
            "fusion_w": ("FLOAT", {"default": defaults.FUSION_W, "min": 0.0, "max": 1.0, "step": 0.05,
                                   "tooltip": "CFW fusion weight w: 0 = plain decoder (more generated detail), 1 = full "
                                              "fusion with LR features (more fidelity). The official script's default "
                                              f"is {defaults.OFFICIAL_FUSION_W:g}."}),
            "color_fix": (list(COLOR_FIXES), {"default": defaults.COLOR_FIX,
                                              "tooltip": "Match colours to the LR frames: adain (paper), wavelet, or none."}),
            "decode_tile": ("INT", {"default": defaults.DECODE_TILE_PX, "min": 0, "max": 4096,
                                    "step": defaults.DECODE_TILE_STEP,
                                    "tooltip": "Decode in spatial tiles of this many output pixels (each keeps the whole "
                                               f"temporal window; {8 * defaults.DECODE_TILE_OVERLAP} px feathered "
                                               "overlap) to bound memory at 1080p/4K. 0 = whole frames. Latents of the "
                                               "official sampler are decoded in the script's own "
                                               f"{defaults.OFFICIAL_IMAGE_TILE}-px image tiles instead."}),
        }, "optional": {
            "memory_budget_gb": ("FLOAT", {"default": defaults.MEMORY_BUDGET_GB, "min": 0.0, "max": 1024.0, "step": 0.5,
                                           "tooltip": MEMORY_BUDGET_TOOLTIP + " Not available for latents of the official "
                                                                              "sampler (refused unless 0)."}),
            "devices": devices_input(),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, fusion_w=None, color_fix=None, decode_tile=None, memory_budget_gb=None, devices=None):
        return comfy_verdict(cls, fusion_w=fusion_w, color_fix=color_fix, decode_tile=decode_tile,
                             memory_budget_gb=memory_budget_gb, devices=devices)

    def decode(self, video_vae, latent, frames, fusion_w, color_fix, decode_tile=defaults.DECODE_TILE_PX,
               memory_budget_gb=defaults.MEMORY_BUDGET_GB, devices=LOCAL_DEVICES):
        frames = image_to_frames(frames)
        result = latents_of(latent, frames.shape[0])
        refuse_official_budget(result, memory_budget_gb)
        count = frames.shape[0]
        out_h, out_w = result.plan.output_size
        check_fits(clip_footprint(count, result.plan, streamed=False).only("decoded"), host.compute_device(),
                   f"MGLD Temporal CFW Decode: {count} frames of {out_w}x{out_h} as one IMAGE",
                   "use MGLD Decode + Save Video (long videos), which writes frames as they are decoded")

        def reserve():
            if not isinstance(result, VideoLatents):
                return 0
            from ..pipeline.memory.budget import fit_decode

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
                check_decode_tile(decode_tile)
                images = decode_video(result, frames, video_vae, dec_w=fusion_w, colorfix=color_fix,
                                      tile=decode_tile // 8, memory_budget_gb=memory_budget_gb, hooks=host.hooks(),
                                      executor=executor)
        return (images,)
