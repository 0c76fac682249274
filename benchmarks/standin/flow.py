"""Optical flow for the stand-in: OpenCV's DIS flow in place of RAFT.

RAFT with random weights gives meaningless flow and real RAFT weights cannot be downloaded here,
so the quality benchmark estimates motion with a well-kept classical method (Kroeger et al.'s
Dense Inverse Search, ``cv2.DISOpticalFlow``). :class:`DISFlow` is called exactly like RAFT
(``flow = estimator(image1, image2)`` on ``[N,3,H,W]`` batches in [0, 1]), so
``pipeline.motion.clip_flows`` runs it at RAFT's working resolution and the pack's own occlusion
check, scene-cut detection and resizing turn its flows into the same MGLD_FLOW / MotionField.
"""
from __future__ import annotations

import numpy as np
import torch


class DISFlow:
    """Dense Inverse Search flow from ``image1`` to ``image2`` (on image1's grid), RAFT's convention."""

    def __init__(self, preset: str = "medium"):
        import cv2

        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                   "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        self._cv2 = cv2
        self._dis = cv2.DISOpticalFlow_create(presets[preset])

    @staticmethod
    def _grey(images: torch.Tensor) -> np.ndarray:
        rgb = (images.detach().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(np.round(rgb.astype(np.float32) @ weights), 0, 255).astype(np.uint8)

    def __call__(self, image1: torch.Tensor, image2: torch.Tensor, iters: int | None = None) -> torch.Tensor:
        first, second = self._grey(image1), self._grey(image2)
        flows = [self._dis.calc(a, b, None) for a, b in zip(first, second)]  # [H,W,2]: (dx, dy)
        return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).float().to(image1.device)
