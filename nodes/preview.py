"""Guidance preview node: a strength sweep on a region of the output, sampled as the full run samples it.

A node of its own rather than preview inputs on the sampler: the sampler's output is the whole clip's
latents, which the decoder and the saver consume; the preview's outputs are pictures, clips and a
table for a person to compare, and it has settings (region, frames, strengths, margins) that mean
nothing to a full run. Its sampler widgets are the sampler's, in the sampler's order, so the same
values give the same plan; once a strength is picked it goes into the sampler's one widget.
"""
from __future__ import annotations

import torch

from . import host
from ..pipeline import defaults
from ..pipeline.decoding.colorfix import COLOR_FIXES
from ..pipeline.frames import LRPlan
from ..pipeline.preview import PreviewRequest, preview_sweep, side_by_side, strength_grid
from ..pipeline.sampling.loop import SamplingOptions
from ..pipeline.sampling.schedule import TRAIN_TIMESTEPS
from .common import SAMPLING, image_to_frames, on_compute_device
from .names import NODE_DISPLAY_NAME_MAPPINGS
from .sampler import _check_flow
from .validation import InputError, check_decode_tile, comfy_verdict, parse_region, parse_strengths

NODE = NODE_DISPLAY_NAME_MAPPINGS["MGLDGuidancePreview"]


class MGLDGuidancePreview:
    DESCRIPTION = ("Tune the guidance strength in seconds: samples only a region of the output (a box, or auto: the "
                   "square with the most motion) over a few frames, with every setting of the full run (same noise, "
                   "windows, tiles, guidance, cuts) and a context margin, once per strength in the list; the LR "
                   "latents, noise and flow are made once. Outputs a labelled grid of one frame per strength at 1:1, "
                   "each strength's clip, its warping error (shown on the node) and an A/B pair. Default mode only.")
    CATEGORY = SAMPLING
    RETURN_TYPES = ("IMAGE", "IMAGE", "IMAGE", "IMAGE", "IMAGE", "STRING")
    RETURN_NAMES = ("grid", "clips", "compare_a", "compare_b", "side_by_side", "table")
    OUTPUT_TOOLTIPS = (
        "The middle shown frame at every strength side by side at 1:1 pixels, labelled with strength and warping error.",
        "Every strength's clip of the region, one after the other in the order of the list (loop it to see flicker).",
        "The region's clip at compare_a (image_a of ComfyUI's Image Compare).",
        "The region's clip at compare_b (image_b of ComfyUI's Image Compare).",
        "The middle frame at compare_a and compare_b side by side (for hosts without Image Compare).",
        "Strength, warping error x1000 and seconds per strength, as shown on the node.")
    OUTPUT_NODE = True
    FUNCTION = "preview"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MGLD_DIFFUSION", {"tooltip": "From the MGLD diffusion model loader."}),
            "video_vae": ("MGLD_VIDEO_VAE", {"tooltip": "From the MGLD video VAE loader (the region is decoded)."}),
            "frames": ("IMAGE", {"tooltip": "The LR video frames (the whole clip: the plan is the full run's)."}),
            "flow": ("MGLD_FLOW", {"tooltip": "From the MGLD flow + occlusion node, computed on the same frames."}),
            "steps": ("INT", {"default": defaults.OFFICIAL_STEPS, "min": 1, "max": TRAIN_TIMESTEPS,
                              "tooltip": "As on the MGLD Sampler you will run."}),
            "seed": ("INT", {"default": defaults.SEED, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                             "tooltip": "As on the MGLD Sampler: the preview draws the same noise at every position."}),
            "scale": ("FLOAT", {"default": defaults.OFFICIAL_SCALE, "min": defaults.MIN_SCALE,
                                "max": defaults.MAX_SCALE, "step": 0.5, "tooltip": "As on the MGLD Sampler."}),
            "window": ("INT", {"default": defaults.OFFICIAL_WINDOW, "min": 2, "max": 16,
                               "tooltip": "As on the MGLD Sampler."}),
            "window_overlap": ("INT", {"default": defaults.WINDOW_OVERLAP, "min": 0, "max": 15,
                                       "tooltip": "As on the MGLD Sampler."}),
            "tile_size": ("INT", {"default": defaults.OFFICIAL_LATENT_TILE, "min": defaults.LATENT_TILE_STEP,
                                  "max": 256, "step": defaults.LATENT_TILE_STEP, "tooltip": "As on the MGLD Sampler."}),
            "tile_overlap": ("INT", {"default": defaults.TILE_OVERLAP, "min": 0, "max": 248,
                                     "step": defaults.LATENT_TILE_STEP, "tooltip": "As on the MGLD Sampler."}),
            "fusion_w": ("FLOAT", {"default": defaults.FUSION_W, "min": 0.0, "max": 1.0, "step": 0.05,
                                   "tooltip": "As on the MGLD decoder."}),
            "color_fix": (list(COLOR_FIXES), {"default": defaults.COLOR_FIX, "tooltip": "As on the MGLD decoder."}),
            "region": ("STRING", {"default": "auto",
                                  "tooltip": "x, y, width, height of the box in output pixels (at least 64x64), or "
                                             f"auto: the {defaults.PREVIEW_AUTO_SIZE}-px square with the most motion "
                                             "in the shown frames."}),
            "start_frame": ("INT", {"default": 0, "min": 0, "max": 1_000_000, "tooltip": "First shown frame."}),
            "frame_count": ("INT", {"default": defaults.OFFICIAL_WINDOW, "min": 2, "max": 64,
                                    "tooltip": "Shown frames: at least one temporal window."}),
            "strengths": ("STRING", {"default": defaults.PREVIEW_STRENGTHS,
                                     "tooltip": "Guidance strengths to compare, separated by commas (0 to 100)."}),
            "margin": ("INT", {"default": defaults.PREVIEW_MARGIN, "min": 0, "max": 256,
                               "step": defaults.LATENT_TILE_STEP,
                               "tooltip": "Latent pixels (x8 output pixels) sampled around the region as context; "
                                          "docs/preview.md shows how the difference from the full run falls with it."}),
            "frame_margin": ("INT", {"default": defaults.PREVIEW_FRAME_MARGIN, "min": 0, "max": 64,
                                     "tooltip": "Frames sampled beyond the decoder windows of the shown frames."}),
            "compare_a": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 100.0, "step": 0.5,
                                    "tooltip": "Strength shown as A of the compare view (one of the list)."}),
            "compare_b": ("FLOAT", {"default": defaults.OFFICIAL_GUIDANCE_STRENGTH, "min": 0.0, "max": 100.0,
                                    "step": 0.5, "tooltip": "Strength shown as B of the compare view (one of the list)."}),
            "decode_tile": ("INT", {"default": defaults.DECODE_TILE_PX, "min": 0, "max": 4096,
                                    "step": defaults.DECODE_TILE_STEP,
                                    "tooltip": "As on the MGLD decoder: the region is decoded in the full run's decode "
                                               "tiles, the frame around it filled with the LR latents."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, **values):
        return comfy_verdict(cls, **values)

    def preview(self, model, video_vae, frames, flow, steps, seed, scale, window, window_overlap, tile_size,
                tile_overlap, fusion_w, color_fix, region, start_frame, frame_count, strengths, margin, frame_margin,
                compare_a, compare_b, decode_tile=defaults.DECODE_TILE_PX):
        frames = image_to_frames(frames)
        _check_flow(frames, flow)
        check_decode_tile(decode_tile)
        box = parse_region(NODE, region)
        values = parse_strengths(NODE, strengths)
        n = frames.shape[0]
        if start_frame + frame_count > n:
            raise InputError(NODE, "start_frame", start_frame, f"with frame_count = {frame_count} runs past the "
                             f"clip's {n} frames", f"set start_frame to at most {max(0, n - frame_count)}"
                             if frame_count <= n else f"set frame_count to at most {n}")
        plan = LRPlan.create(frames.shape[1], frames.shape[2], scale)
        oh, ow = plan.output_size
        if box is not None and (box[0] + box[2] > ow or box[1] + box[3] > oh):
            raise InputError(NODE, "region", region, f"is outside the {ow}x{oh} output frame",
                             f"keep x + width <= {ow} and y + height <= {oh}, or use auto")
        options = SamplingOptions(steps=steps, seed=seed, window=window, window_overlap=window_overlap, tile=tile_size,
                                  tile_overlap=tile_overlap)
        options.validate(plan.latent_size)
        request = PreviewRequest(start_frame, frame_count, box, margin, frame_margin, tuple(values),
                                 defaults.PREVIEW_AUTO_SIZE)
        context = model.require_context()
        with torch.no_grad(), on_compute_device(model.unet, model.lr_encoder, model.first_stage, video_vae):
            result = preview_sweep(frames, flow, plan, options, request, **model.networks(), context=context,
                                   video_vae=video_vae, dec_w=fusion_w, colorfix=color_fix,
                                   decode_tile=decode_tile // 8, hooks=host.hooks())
        middle = frame_count // 2
        grid = strength_grid(result, middle)
        clips = torch.cat([result.clips[s] for s in result.strengths])
        a, b = result.clips[float(compare_a)], result.clips[float(compare_b)]
        pair = side_by_side(a[middle], b[middle], (f"s={compare_a:g}", f"s={compare_b:g}"))
        table = result.table()
        return {"ui": {"text": [table], "images": host.preview_images(grid)},
                "result": (grid, clips, a, b, pair, table)}
