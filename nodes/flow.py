"""Flow + occlusion node: RAFT between neighbouring LR frames, consistency masks, scene cuts, previews.

It owns the clip's scene cuts (``pipeline/motion/cuts.py``): the detector (TransNetV2 by default), the
threshold (``scene_cut_threshold``, the score both detectors compare: 0.5 is TransNetV2's own and was the
histogram's default, so a workflow saved before the detector choice existed loads with the same threshold
and only the detector improves), the user's manual corrections, and a preview strip per boundary.
"""
from __future__ import annotations

import math

import torch

from . import host
from ..pipeline.defaults import CUT_DETECTOR, CUT_THRESHOLD, OFFICIAL_SCALE
from ..pipeline.memory.footprint import check_fits, clip_footprint
from ..pipeline.frames import LRPlan
from ..pipeline.memory.host_ram import release_freed_memory
from ..pipeline.motion.field import clip_flows
from ..pipeline.motion.cut_preview import preview_strips
from ..pipeline.motion.cuts import DETECTORS, MANUAL_HELP, parse_manual
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
                   "masks and scene cuts (TransNetV2: hard cuts, dissolves, fades; flashes are not cuts), for the "
                   "motion guidance. Computed once: changing sampler settings reuses it.")
    CATEGORY = MOTION
    RETURN_TYPES = ("MGLD_FLOW", "IMAGE", "IMAGE", "IMAGE")
    RETURN_NAMES = ("flow", "flow_preview", "occlusion_preview", "cut_preview")
    OUTPUT_TOOLTIPS = ("Flows, occlusion and scene cuts of the clip.",
                       "Colour-wheel view of the flow from each frame to the next (hue = direction).",
                       "Occlusion masks (white = occluded: not guided).",
                       "One strip of thumbnails around each shot boundary, with frame numbers, kind and score "
                       "(red: cut, yellow: dissolve/fade, blue: flash, green frame: manual).")
    FUNCTION = "compute"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "raft": ("MGLD_RAFT", {"tooltip": "From the MGLD RAFT loader."}),
            "frames": ("IMAGE", {"tooltip": "The LR video frames (the same frames the sampler gets)."}),
            "scene_cut_threshold": ("FLOAT", {"default": CUT_THRESHOLD, "min": 0.0, "max": 1.0, "step": 0.01,
                                              "tooltip": "Detector score above which a shot boundary is marked (no "
                                                         "guidance or window across it): TransNetV2's probability, or "
                                                         "the colour-histogram jump. Lower finds more. 1 disables."}),
        }, "optional": {
            "devices": devices_input(),
            "cut_detector": (list(DETECTORS), {"default": CUT_DETECTOR,
                                               "tooltip": "transnetv2: a network trained for shot boundaries (hard cuts, "
                                                          "dissolves, fades). histogram: colour-histogram jumps (the "
                                                          "pack's original detector; misses same-colour cuts and "
                                                          "gradual transitions). none: only the manual list."}),
            "manual_cuts": ("STRING", {"default": "", "multiline": False,
                                       "tooltip": "Corrections to the detector, frame numbers from 0 as in cut_preview: "
                                                  + MANUAL_HELP.removeprefix("write ") + "."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, scene_cut_threshold=None, devices=None, cut_detector=None, manual_cuts=None):
        return comfy_verdict(cls, scene_cut_threshold=scene_cut_threshold, devices=devices, cut_detector=cut_detector,
                             manual_cuts=manual_cuts)

    def compute(self, raft, frames, scene_cut_threshold, devices=LOCAL_DEVICES, cut_detector=CUT_DETECTOR,
                manual_cuts=""):
        frames = image_to_frames(frames)
        try:  # the list is checked against the clip before any work (VALIDATE_INPUTS checked its form)
            parse_manual(manual_cuts).check(frames.shape[0])
        except ValueError as err:
            raise ValueError(f"MGLD Flow + Occlusion: manual_cuts = {manual_cuts!r}: {err}") from None
        # Flows are computed as the official script does for its x4 upscale, so one flow serves both modes.
        plan = LRPlan.create(frames.shape[1], frames.shape[2], OFFICIAL_SCALE)
        check_fits(clip_footprint(frames.shape[0], plan).only("RAFT", "optical flow"), host.compute_device(),
                   f"MGLD Flow + Occlusion: {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]}",
                   "use fewer or smaller frames")
        with torch.no_grad(), stage_executor("MGLD Flow + Occlusion", devices, raft) as executor:
            flow = clip_flows(raft, frames, plan, cut_threshold=cut_threshold_value(scene_cut_threshold),
                              hooks=host.hooks(), executor=executor, cut_detector=cut_detector,
                              manual_cuts=manual_cuts).to("cpu")
        cut_preview = preview_strips(frames, flow.shots)
        if flow.num_frames < 2:
            h, w = plan.flow_size
            blank = torch.zeros(1, h, w, 3)
            return flow, blank, blank, cut_preview
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
        return flow, colour, occlusion, cut_preview
