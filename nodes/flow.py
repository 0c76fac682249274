"""Flow + occlusion node: RAFT between neighbouring LR frames, consistency masks, scene cuts, previews."""
from __future__ import annotations

import math

import torch

from . import host
from ..pipeline.defaults import CUT_THRESHOLD, OFFICIAL_SCALE
from ..pipeline.memory.footprint import check_fits, clip_footprint
from ..pipeline.frames import LRPlan
from ..pipeline.memory.host_ram import release_freed_memory
from ..pipeline.motion.field import clip_flows
from ..pipeline.motion.pairs import cut_threshold_value
from .common import LOCAL_DEVICES, MOTION, devices_input, image_to_frames, stage_executor
from .validation import comfy_verdict

PREVIEW_CHUNK = 16  # pairs turned into preview images at a time


def flow_to_colour(flow: torch.Tensor) -> torch.Tensor:
    """``[N,2,H,W]`` flows -> ``[N,H,W,3]`` colour-wheel images (hue = direction, saturation = speed)."""
    u, v = flow[:, 0], flow[:, 1]
    magnitude = torch.sqrt(u * u + v * v)
    scale = magnitude.flatten(1).amax(dim=1).clamp(min=1e-6).view(-1, 1, 1)
    hue = (torch.atan2(-v, -u) / math.pi + 1) / 2 * 6  # 0..6
    sat = (magnitude / scale).clamp(0, 1)
    k = lambda n: (n + hue) % 6  # noqa: E731
    channel = lambda n: 1 - sat * torch.clamp(torch.minimum(k(n), 4 - k(n)), 0, 1)  # noqa: E731
    return torch.stack([channel(5), channel(3), channel(1)], dim=-1).clamp(0, 1)


class MGLDFlow:
    DESCRIPTION = ("Optical flow (RAFT) between neighbouring LR frames in both directions, forward-backward occlusion "
                   "masks and scene cuts, for the motion guidance. Computed once: changing sampler settings reuses it.")
    CATEGORY = MOTION
    RETURN_TYPES = ("MGLD_FLOW", "IMAGE", "IMAGE")
    RETURN_NAMES = ("flow", "flow_preview", "occlusion_preview")
    OUTPUT_TOOLTIPS = ("Flows, occlusion and scene cuts of the clip.",
                       "Colour-wheel view of the flow from each frame to the next (hue = direction).",
                       "Occlusion masks (white = occluded: not guided).")
    FUNCTION = "compute"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "raft": ("MGLD_RAFT", {"tooltip": "From the MGLD RAFT loader."}),
            "frames": ("IMAGE", {"tooltip": "The LR video frames (the same frames the sampler gets)."}),
            "scene_cut_threshold": ("FLOAT", {"default": CUT_THRESHOLD, "min": 0.0, "max": 1.0, "step": 0.01,
                                              "tooltip": "Colour-histogram jump between neighbouring frames above which a "
                                                         "scene cut is marked (no guidance or window across it). 1 disables."}),
        }, "optional": {
            "devices": devices_input(),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, scene_cut_threshold=None, devices=None):
        return comfy_verdict(cls, scene_cut_threshold=scene_cut_threshold, devices=devices)

    def compute(self, raft, frames, scene_cut_threshold, devices=LOCAL_DEVICES):
        frames = image_to_frames(frames)
        # Flows are computed as the official script does for its x4 upscale, so one flow serves both modes.
        plan = LRPlan.create(frames.shape[1], frames.shape[2], OFFICIAL_SCALE)
        check_fits(clip_footprint(frames.shape[0], plan).only("RAFT", "optical flow"), host.compute_device(),
                   f"MGLD Flow + Occlusion: {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]}",
                   "use fewer or smaller frames")
        with torch.no_grad(), stage_executor("MGLD Flow + Occlusion", devices, raft) as executor:
            flow = clip_flows(raft, frames, plan, cut_threshold=cut_threshold_value(scene_cut_threshold),
                              hooks=host.hooks(), executor=executor).to("cpu")
        if flow.num_frames < 2:
            h, w = plan.flow_size
            blank = torch.zeros(1, h, w, 3)
            return flow, blank, blank
        motion = flow.motion_for(plan)
        pairs = flow.num_frames - 1
        colour = torch.empty(pairs, *flow.flows_backward.shape[-2:], 3)
        occlusion = torch.empty(pairs, *motion.fwd_occ.shape[-2:], 3)
        for a in range(0, pairs, PREVIEW_CHUNK):  # chunks: a long clip's temporaries stay small
            part = slice(a, a + PREVIEW_CHUNK)
            colour[part] = flow_to_colour(flow.flows_backward[part])
            occlusion[part] = torch.maximum(motion.fwd_occ[part], motion.bwd_occ[part])[:, 0, :, :, None]
        del motion
        release_freed_memory()
        return flow, colour, occlusion
