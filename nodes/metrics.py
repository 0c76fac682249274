"""Warping-error node: the paper's temporal-consistency metric, as figures on the node, a number and a plot."""
from __future__ import annotations

import contextlib
import math

import torch

from ..pipeline.motion.warping_error import plot_errors, warping_errors
from ..pipeline.defaults import RAFT_SHORT_SIDE
from ..pipeline.motion.pairs import RAFTMotion
from .common import METRICS, image_to_frames, on_compute_device


def mean_error(per_pair: torch.Tensor) -> float:
    """Mean over measurable pairs; NaN when no pair is measurable (flow inconsistent almost everywhere,
    or every pair crosses a cut), 0 for a single frame (no pair at all)."""
    values = per_pair[torch.isfinite(per_pair)]
    if values.numel():
        return float(values.mean())
    return float("nan") if per_pair.numel() else 0.0


def figures_text(means: dict[str, float]) -> str:
    """One line per result, aligned, plus the difference when two are compared (what the node shows)."""
    def shown(value: float) -> str:
        return "not measurable" if math.isnan(value) else f"{value:.3f}"

    width = max(len(label) for label in means)
    lines = ["warping error x1000 (lower = steadier)"]
    lines += [f"{label:<{width}}  {shown(value)}" for label, value in means.items()]
    if len(means) == 2:
        (label_a, a), (label_b, b) = means.items()
        if not (math.isnan(a) or math.isnan(b)):
            lines.append(f"{label_b} - {label_a}: {b - a:+.3f}")
    return "\n".join(lines)


class MGLDWarpingError:
    DESCRIPTION = ("Mean flow-warping error between neighbouring frames (lower = more temporally consistent), using the "
                   "flow of the LR clip, or RAFT on the frames themselves for clips with another frame count (e.g. "
                   "after MGLD Interpolate Frames). Connect two results to compare settings: both figures are "
                   "written on the node after a run, and plotted per frame pair.")
    CATEGORY = METRICS
    RETURN_TYPES = ("FLOAT", "IMAGE", "STRING")
    RETURN_NAMES = ("warping_error", "plot", "figures")
    OUTPUT_TOOLTIPS = ("Mean warping error of frames over measurable frame pairs (x1000, as the paper reports it); "
                       "NaN if none is.",
                       "Per-pair warping error (red: frames, blue: frames_b when connected).",
                       "The figures shown on the node, as text.")
    OUTPUT_NODE = True  # its figures are a result: the node runs even when nothing is connected to it
    FUNCTION = "measure"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "Frames to measure (any size: the flow is resized to them)."}),
            },
            "optional": {
                "flow": ("MGLD_FLOW", {"tooltip": "Flow of the LR clip these frames were made from (same frame count)."}),
                "frames_b": ("IMAGE", {"tooltip": "A second result to compare (same clip)."}),
                "raft": ("MGLD_RAFT", {"tooltip": "Instead of flow: RAFT computes the flows from the frames themselves "
                                                  f"(short side {RAFT_SHORT_SIDE} px), for any frame count, e.g. "
                                                  "an interpolated clip. Used when connected."}),
                "label": ("STRING", {"default": "frames", "tooltip": "Name of the first result in the figures."}),
                "label_b": ("STRING", {"default": "frames_b", "tooltip": "Name of the second result in the figures."}),
            },
        }

    def measure(self, frames, flow=None, frames_b=None, label="frames", label_b="frames_b", raft=None):
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
        placement = on_compute_device(raft) if raft is not None else contextlib.nullcontext()
        with torch.no_grad(), placement:
            series = {key: warping_errors(clip, motion) * 1000 for key, clip in clips.items()}
        labels = [label or "frames", label_b or "frames_b"]
        if labels[0] == labels[1]:
            labels[1] += " (b)"
        means = {name: mean_error(values) for name, values in zip(labels, series.values())}
        text = figures_text(means)
        return {"ui": {"text": [text]}, "result": (means[labels[0]], plot_errors(series), text)}
