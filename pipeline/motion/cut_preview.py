"""The scene-cut preview: one strip of thumbnails around each shot boundary, labelled with its kind and score.

So a user sees at a glance where the clip will be split, and which frame numbers to put in the flow node's
manual list. Each strip shows ``CONTEXT`` frames before the boundary, the boundary's own frames (a
transition's first, middle and last; a flash's frame) and ``CONTEXT`` after, each with its frame number;
a coloured bar names the kind (red: cut, yellow: dissolve/fade, blue: flash; green outline: manual). Text is
drawn with a built-in 3x5 pixel font, so nothing beyond torch is needed.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .cuts import Boundary, Shots

#: Frames shown on either side of a boundary; thumbnail height in pixels; text scale (pixels per font dot).
CONTEXT = 2
THUMB_HEIGHT = 72
TEXT_SCALE = 2
COLOURS = {"cut": (0.9, 0.15, 0.1), "transition": (0.95, 0.8, 0.1), "flash": (0.2, 0.5, 1.0)}
MANUAL_COLOUR = (0.1, 0.8, 0.2)

_FONT = {  # 3x5 glyphs, rows top to bottom, '#' = ink
    "0": "### #.# #.# #.# ###", "1": ".#. ##. .#. .#. ###", "2": "### ..# ### #.. ###", "3": "### ..# ### ..# ###",
    "4": "#.# #.# ### ..# ..#", "5": "### #.. ### ..# ###", "6": "### #.. ### #.# ###", "7": "### ..# ..# .#. .#.",
    "8": "### #.# ### #.# ###", "9": "### #.# ### ..# ###", ".": "... ... ... ... .#.", "-": "... ... ### ... ...",
    "|": ".#. .#. .#. .#. .#.", ":": "... .#. ... .#. ...", " ": "... ... ... ... ...",
    "A": ".#. #.# ### #.# #.#", "C": "### #.. #.. #.. ###", "D": "##. #.# #.# #.# ##.", "E": "### #.. ##. #.. ###",
    "F": "### #.. ##. #.. #..", "H": "#.# #.# ### #.# #.#", "I": "### .#. .#. .#. ###", "L": "#.. #.. #.. #.. ###",
    "M": "#.# ### ### #.# #.#", "N": "##. #.# #.# #.# #.#", "O": "### #.# #.# #.# ###", "S": "### #.. ### ..# ###",
    "G": "### #.. #.# #.# ###", "V": "#.# #.# #.# #.# .#.", "B": "##. #.# ##. #.# ##.", "P": "### #.# ### #.. #..",
    "K": "#.# #.# ##. #.# #.#", "W": "#.# #.# ### ### #.#", "Y": "#.# #.# .#. .#. .#.",
    "T": "### .#. .#. .#. .#.", "U": "#.# #.# #.# #.# ###", "R": "##. #.# ##. #.# #.#", "X": "#.# #.# .#. #.# #.#",
}


def text_mask(text: str, scale: int = TEXT_SCALE) -> torch.Tensor:
    """``[5*scale, 4*len*scale]`` float mask (1 = ink) of ``text`` (upper-cased; unknown characters blank)."""
    glyphs = []
    for ch in text.upper():
        rows = _FONT.get(ch, _FONT[" "]).split()
        glyph = torch.tensor([[1.0 if c == "#" else 0.0 for c in row] + [0.0] for row in rows])
        glyphs.append(glyph)
    mask = torch.cat(glyphs, dim=1) if glyphs else torch.zeros(5, 0)
    return mask.repeat_interleave(scale, 0).repeat_interleave(scale, 1)


def _stamp(image: torch.Tensor, text: str, y: int, x: int, colour=(1.0, 1.0, 1.0)) -> None:
    """Writes ``text`` into ``image [H,W,3]`` at ``(y, x)`` on a darkened backing, clipped to the image."""
    mask = F.pad(text_mask(text), (1, 1, 1, 1))  # one dot of backing around the ink
    h, w = min(mask.shape[0], image.shape[0] - y), min(mask.shape[1], image.shape[1] - x)
    if h <= 0 or w <= 0:
        return
    m = mask[:h, :w].unsqueeze(-1)
    region = image[y:y + h, x:x + w]
    region.copy_(region * 0.3 * (1 - m) + m * torch.tensor(colour))


def _frames_of(b: Boundary, n: int) -> list[int]:
    inner = [b.first] if b.kind != "transition" else sorted({b.first, (b.first + b.last) // 2, b.last})
    if b.kind == "cut":
        inner = [b.first, b.first + 1]
        before = range(b.first - CONTEXT + 1, b.first)
        after = range(b.first + 2, b.first + 2 + CONTEXT - 1)
    else:
        before = range(b.first - CONTEXT, b.first)
        after = range(b.last + 1, b.last + 1 + CONTEXT)
    return [f for f in [*before, *inner, *after] if 0 <= f < n]


def _thumb(frame: torch.Tensor, height: int) -> torch.Tensor:
    x = frame.float()
    x = x / 255.0 if frame.dtype == torch.uint8 else x
    h, w = x.shape[:2]
    width = max(1, round(w * height / h))
    return F.interpolate(x.permute(2, 0, 1)[None], size=(height, width), mode="area" if h > height else "bilinear",
                         align_corners=None if h > height else False)[0].permute(1, 2, 0).clamp(0, 1)


def preview_strips(frames: torch.Tensor, shots: Shots, height: int = THUMB_HEIGHT) -> torch.Tensor:
    """``[B, H, W, 3]`` float images, one strip per boundary (one grey strip saying ``NO CUTS`` when there is none).

    All strips have the same width (``2 * CONTEXT + 3`` thumbnails), so ComfyUI shows them as one batch.
    """
    n = frames.shape[0]
    h, w = frames.shape[1:3]
    tw = max(1, round(w * height / h))
    slots = 2 * CONTEXT + 3
    bar = 5 * TEXT_SCALE + 4
    strips = []
    for b in shots.boundaries:
        strip = torch.full((height + bar, slots * (tw + 2), 3), 0.1)
        colour = torch.tensor(COLOURS[b.kind])
        strip[:bar] = colour * 0.6
        if b.manual:
            strip[:2], strip[-2:], strip[:, :2], strip[:, -2:] = (torch.tensor(MANUAL_COLOUR),) * 4
        picks = _frames_of(b, n)
        for k, f in enumerate(picks):
            x0 = k * (tw + 2) + 1
            strip[bar:bar + height, x0:x0 + tw] = _thumb(frames[f], height)
            inside = b.first <= f <= (b.last if b.kind != "cut" else b.first)
            _stamp(strip, str(f), bar + 2, x0 + 2, tuple(colour.tolist()) if inside else (1.0, 1.0, 1.0))
        _stamp(strip, b.label(), 1, 2)
        strips.append(strip)
    if not strips:
        strip = torch.full((height + bar, slots * (tw + 2), 3), 0.25)
        _stamp(strip, f"NO CUTS {shots.detector.upper()}", 1, 2)
        strips.append(strip)
    return torch.stack(strips)
