"""Frame interpolation node: m times the frame rate, from the LR clip's flow or from RAFT, scene-cut aware."""
from __future__ import annotations

import torch

from . import host
from ..pipeline.motion.interpolation import MAX_MULTIPLIER, check_motion_covers, interpolate_video, interpolated_fps
from ..pipeline.defaults import CUT_DETECTOR, CUT_THRESHOLD, RAFT_SHORT_SIDE
from ..pipeline.motion.cuts import find_shots
from ..pipeline.motion.pairs import ClipFlowMotion, RAFTMotion
from .common import VIDEO, image_to_frames, on_compute_device

#: The node's settings, shared with the long-video node (which interpolates while it writes): name -> input spec.
INTERPOLATION_SETTINGS = {
    "scene_cut_threshold": ("FLOAT", {"default": CUT_THRESHOLD, "min": 0.0, "max": 1.0, "step": 0.01,
                                      "tooltip": "Scene-cut detector score (TransNetV2; the flow's own detector when "
                                                 "flow is connected) above which a boundary is marked: frames inserted "
                                                 "at a cut repeat the nearer frame instead of blending two shots, and "
                                                 "inside a dissolve or fade they cross-fade. 1 disables."}),
    "raft_resolution": ("INT", {"default": RAFT_SHORT_SIDE, "min": 0, "max": 4320, "step": 8,
                                "tooltip": "Short side (pixels) the frames are shrunk to for RAFT when raft is "
                                           "connected; flows are scaled back up. RAFT's memory grows with the square "
                                           "of the pixel count (540: 1.1 GiB for a pair; 1080: 16 GiB). 0 = full size."}),
}
MOTION_INPUTS = {
    "flow": ("MGLD_FLOW", {"tooltip": "The MGLD Flow + Occlusion output of the LR clip these frames were upscaled from: "
                                      "its flows are reused (resized), so no RAFT runs. Ignored when raft is connected."}),
    "raft": ("MGLD_RAFT", {"tooltip": "RAFT, for any frames: flows are computed on the frames themselves at "
                                      "raft_resolution."}),
}


def motion_source(flow, raft, scene_cut_threshold: float, raft_resolution: int, frames: int, node: str, clip=None,
                  hooks=None):
    """The per-pair motion of a clip of ``frames`` frames: RAFT when connected, else the LR clip's flow.

    With RAFT, the scene cuts come from the flow when it is connected and covers the clip (its detector and
    the user's manual corrections), else the default detector runs once on ``clip`` (the clip's frames, or the
    LR frames it is upscaled from: same count) before any pair is interpolated.
    Raises the user's one-line error, before any work, when neither is connected or the flow is another clip's.
    """
    if raft is not None:
        if flow is not None and flow.num_frames == frames and getattr(flow, "shots", None) is not None:
            shots = flow.shots.with_threshold(scene_cut_threshold)
        elif clip is not None:
            shots = find_shots(clip, CUT_DETECTOR, scene_cut_threshold, hooks=hooks)
        else:
            shots = None
        return RAFTMotion(raft, raft_resolution, scene_cut_threshold, shots=shots)
    if flow is None:
        raise ValueError(f"{node}: no motion to interpolate with: connect flow (the MGLD Flow + Occlusion of the LR "
                         "clip these frames were upscaled from) or raft (an MGLD RAFT Loader)")
    motion = ClipFlowMotion(flow, scene_cut_threshold)
    try:
        check_motion_covers(motion, frames)
    except ValueError as exc:
        raise ValueError(f"{node}: {exc}") from None
    return motion


def raft_reserve(raft, size, raft_resolution: int) -> int:
    """Accelerator bytes RAFT needs for one pair both ways at the working size (0 without RAFT)."""
    if raft is None:
        return 0
    from ..models.raft.raft import sintel_padding
    from ..pipeline.memory.estimate import flow_peak
    from ..pipeline.motion.pairs import raft_working_size

    h, w = raft_working_size(*size, raft_resolution)
    left, right, top, bottom = sintel_padding(h, w)
    return flow_peak(raft, 2, h + top + bottom, w + left + right)


class MGLDInterpolateFrames:
    DESCRIPTION = ("Raises the frame rate m times by motion-compensated frame interpolation: between every two frames, "
                   "m-1 frames are made by warping both along the motion and blending them, each region taken from "
                   "the frame that sees it. Reuses the LR clip's flow (free) or runs RAFT; never blends across a "
                   "scene cut. For long clips set the multiplier of MGLD Decode + Save Video instead (frames are "
                   "interpolated as they are written: nothing m times longer is held in memory).")
    CATEGORY = VIDEO
    RETURN_TYPES = ("IMAGE", "FLOAT", "AUDIO")
    RETURN_NAMES = ("frames", "fps", "audio")
    OUTPUT_TOOLTIPS = ("N + (m-1)(N-1) frames: the inputs, with m-1 new frames between each two.",
                       "The frame rate times m (29.97 x 2 is 60000/1001 exactly).",
                       "The audio, unchanged (the clip's duration does not change).")
    FUNCTION = "interpolate"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "Frames of any size, e.g. the upscaled clip."}),
                "fps": ("FLOAT", {"default": 24.0, "min": 0.01, "max": 1000.0, "forceInput": True,
                                  "tooltip": "Frame rate of the frames (connect the loader's fps)."}),
                "multiplier": ("INT", {"default": 2, "min": 2, "max": MAX_MULTIPLIER,
                                       "tooltip": "Frame-rate multiplier m: m-1 frames are inserted between each two."}),
                **INTERPOLATION_SETTINGS,
            },
            "optional": {"audio": ("AUDIO", {"tooltip": "Passed through unchanged, to keep it beside the frames."}),
                         **MOTION_INPUTS},
        }

    def interpolate(self, frames, fps, multiplier, scene_cut_threshold, raft_resolution, audio=None, flow=None,
                    raft=None):
        frames = image_to_frames(frames)
        new_fps = interpolated_fps(fps, multiplier)
        motion = motion_source(flow, raft, scene_cut_threshold, raft_resolution, frames.shape[0],
                               "MGLD Interpolate Frames", clip=frames, hooks=host.hooks())
        reserve = lambda: raft_reserve(raft, frames.shape[1:3], raft_resolution)  # noqa: E731
        with torch.no_grad(), on_compute_device(raft, reserve=reserve) as device:
            out = interpolate_video(frames, multiplier, motion, device=device, hooks=host.hooks())
        return out, float(new_fps), audio
