"""Warping-error node: the paper's temporal-consistency metric, as a number and a per-frame plot."""
from __future__ import annotations

import torch

from ..pipeline.metrics import plot_errors, warping_errors
from .common import CATEGORY, image_to_frames


class MGLDWarpingError:
    DESCRIPTION = ("Mean flow-warping error between neighbouring frames (lower = more temporally consistent), using the "
                   "flow of the LR clip. Connect two results to compare settings by number and by plot.")
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
                "flow": ("MGLD_FLOW", {"tooltip": "Flow of the LR clip these frames were made from."}),
            },
            "optional": {"frames_b": ("IMAGE", {"tooltip": "A second result to plot for comparison."})},
        }

    def measure(self, frames, flow, frames_b=None):
        series = {"a": warping_errors(image_to_frames(frames), flow) * 1000}
        if frames_b is not None:
            series["b"] = warping_errors(image_to_frames(frames_b), flow) * 1000
        values = series["a"][torch.isfinite(series["a"])]
        # NaN when no pair is measurable (flow inconsistent almost everywhere, or every pair crosses a cut).
        mean = float(values.mean()) if values.numel() else (float("nan") if series["a"].numel() else 0.0)
        return mean, plot_errors(series)
