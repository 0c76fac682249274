"""Warping-error node: the paper's temporal-consistency metric, as a number and a per-frame plot."""
from __future__ import annotations

import torch

from ..pipeline.metrics import plot_errors, warping_errors
from ..pipeline.pair_motion import DEFAULT_RAFT_SHORT_SIDE, RAFTMotion
from .common import CATEGORY, image_to_frames, on_compute_device


class MGLDWarpingError:
    DESCRIPTION = ("Mean flow-warping error between neighbouring frames (lower = more temporally consistent), using the "
                   "flow of the LR clip, or RAFT on the frames themselves for clips with another frame count (e.g. "
                   "after MGLD Interpolate Frames). Connect two results to compare settings by number and by plot.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("FLOAT", "IMAGE")
    RETURN_NAMES = ("warping_error", "plot")
    OUTPUT_TOOLTIPS = ("Mean warping error over measurable frame pairs (x1000, as the paper reports it); NaN if none is.",
                       "Per-pair warping error (red: frames, blue: frames_b when connected).")
    FUNCTION = "measure"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "Frames to measure (any size: the flow is resized to them)."}),
            },
            "optional": {
                "flow": ("MGLD_FLOW", {"tooltip": "Flow of the LR clip these frames were made from (same frame count)."}),
                "frames_b": ("IMAGE", {"tooltip": "A second result to plot for comparison."}),
                "raft": ("MGLD_RAFT", {"tooltip": "Instead of flow: RAFT computes the flows from the frames themselves "
                                                  f"(short side {DEFAULT_RAFT_SHORT_SIDE} px), for any frame count, e.g. "
                                                  "an interpolated clip. Used when connected."}),
            },
        }

    def measure(self, frames, flow=None, frames_b=None, raft=None):
        if flow is None and raft is None:
            raise ValueError("MGLD Warping Error: connect flow (the MGLD Flow + Occlusion of the LR clip) or raft")
        clips = {"a": image_to_frames(frames)}
        if frames_b is not None:
            clips["b"] = image_to_frames(frames_b)
        motion = RAFTMotion(raft) if raft is not None else flow
        for name, clip in clips.items():
            if raft is None and clip.shape[0] != flow.num_frames:
                raise ValueError(f"MGLD Warping Error: the flow covers {flow.num_frames} frames but "
                                 f"{'frames' if name == 'a' else 'frames_b'} has {clip.shape[0]}: connect raft to "
                                 "measure a clip of another length (e.g. an interpolated one)")
        with torch.no_grad(), on_compute_device(raft):
            series = {key: warping_errors(clip, motion) * 1000 for key, clip in clips.items()}
        values = series["a"][torch.isfinite(series["a"])]
        # NaN when no pair is measurable (flow inconsistent almost everywhere, or every pair crosses a cut).
        mean = float(values.mean()) if values.numel() else (float("nan") if series["a"].numel() else 0.0)
        return mean, plot_errors(series)
