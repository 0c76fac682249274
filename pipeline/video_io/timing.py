"""Variable frame rate: the constant-rate frame grid a file's frames are loaded onto.

MGLD's sampler, its motion guidance and RAFT all take frame ``k`` and ``k + 1`` to be one frame
period apart, and a ComfyUI IMAGE batch carries no timestamps. So the frames of a variable-frame-rate
file (phones, screen recorders, clips cut by other tools) are resampled once, at load, to a constant
rate by their timestamps: output frame ``k`` (shown at ``start + k / rate``) is the source frame
nearest to that time, a source frame is repeated across a long gap and dropped where frames come
faster than the rate. The clip then lasts as long as the file's video, and the audio taken under it
stays in sync through every later node and into the saved file. (Carrying the timestamps to the
writer instead would leave the sampler and the flow treating uneven gaps as even ones.)

The grid rate is the file's nominal rate when the timestamps fit it (a constant-rate file: every
frame lands in its own slot and nothing changes). Otherwise it is the rate of the file's short,
common frame interval (its 10th percentile), so frames are repeated rather than lost, unless that
would more than double the frame count (e.g. a screen recording idle for long stretches); then it is
the average rate. Both are rounded to a whole or NTSC (``n * 1000/1001``) rate.

The timestamps are read from the packets alone (no decoding), so the whole grid is known before the
first frame is decoded, and decoding still stops at the last wanted frame.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Optional

#: A variable-rate file keeps its short frame interval unless that makes more than this many frames per source frame.
MAX_REPEAT_FACTOR = 2
#: Which low percentile of the frame intervals counts as the file's short, common interval.
SHORT_INTERVAL_PERCENTILE = 10


@dataclasses.dataclass(frozen=True)
class FrameTimeline:
    """Presentation timestamps of a video stream's frames (sorted, in ``time_base`` units) and when the
    last frame stops showing."""

    pts: tuple[int, ...]
    end: int
    time_base: Fraction

    def time(self, pts: int) -> Fraction:
        return Fraction(pts) * self.time_base

    @property
    def intervals(self) -> list[int]:
        return [b - a for a, b in zip(self.pts, self.pts[1:])]


def read_timeline(container) -> Optional[FrameTimeline]:
    """The video frame timestamps of an open container, from demuxed packets (nothing is decoded).

    None when the stream does not time its packets (raw streams, some AVI files): frames are then
    taken as evenly spaced. The last frame lasts its packet duration, or the median frame interval
    when the file stores none (or an implausibly short one, such as one tick of a millisecond time base).
    """
    stream = container.streams.video[0]
    if not stream.time_base:
        return None
    pts, last, last_duration = set(), None, 0
    for packet in container.demux(stream):
        if packet.size == 0 or getattr(packet, "is_discard", False):  # flush packets, frames an edit list cuts
            continue
        if packet.pts is None:
            return None
        pts.add(packet.pts)
        if last is None or packet.pts >= last:
            last, last_duration = packet.pts, packet.duration or 0
    if not pts:
        return None
    ordered = tuple(sorted(pts))
    intervals = sorted(b - a for a, b in zip(ordered, ordered[1:]))
    if intervals and last_duration < intervals[len(intervals) // 2] / 2:
        last_duration = intervals[len(intervals) // 2]
    return FrameTimeline(ordered, ordered[-1] + max(last_duration, 0), Fraction(stream.time_base))


def nice_rate(rate: float) -> Fraction:
    """The whole rate nearest to ``rate`` (at least 1 fps), or the NTSC rate (``n * 1000/1001``, from 10 fps up)
    when that is nearer."""
    whole = Fraction(max(1, round(rate)))
    if rate < 10:
        return whole
    ntsc = Fraction(round(rate * 1.001) * 1000, 1001)
    return min((whole, ntsc), key=lambda r: (abs(float(r) - rate), r.denominator))


@dataclasses.dataclass(frozen=True)
class ConstantRateGrid:
    """Where each output frame of a constant-rate clip comes from.

    ``source_pts[k]`` is the timestamp of the source frame shown as output frame ``k``, which plays at
    :meth:`slot_time` ``(k)``. ``repeated`` counts output frames that show the same source frame as the
    one before; ``dropped`` counts source frames that no output frame shows.
    """

    rate: Fraction
    timeline: FrameTimeline
    source_pts: tuple[int, ...]
    repeated: int
    dropped: int

    @property
    def frames(self) -> int:
        return len(self.source_pts)

    @property
    def resampled(self) -> bool:
        """False for a constant-rate file: every source frame is one output frame."""
        return bool(self.repeated or self.dropped)

    def slot_time(self, k: int) -> Fraction:
        return self.timeline.time(self.timeline.pts[0]) + Fraction(k) / self.rate

    def describe(self) -> str:
        """What the resampling did, for the loader's one-line notice."""
        intervals = self.timeline.intervals or [self.timeline.end - self.timeline.pts[0]]
        shortest, longest = (_ms(self.timeline.time(i)) for i in (min(intervals), max(intervals)))
        return (f"variable frame rate (frames {shortest}-{longest} ms apart), resampled by timestamp to a constant "
                f"{_fps(self.rate)} fps: {len(self.timeline.pts)} source frames -> {self.frames} ({self.repeated} "
                f"repeated, {self.dropped} dropped), {float(self.frames / self.rate):.2f} s as in the file, so the "
                f"audio stays in sync")


def slot_count(timeline: FrameTimeline, rate: Fraction) -> int:
    """How many frames at ``rate`` cover the timeline (its duration, rounded to whole frames; at least one)."""
    return max(1, round(timeline.time(timeline.end - timeline.pts[0]) * rate))


def grid_on(timeline: FrameTimeline, rate: Fraction) -> ConstantRateGrid:
    """The constant-rate grid at ``rate`` over ``timeline``: each slot shows the source frame nearest in time."""
    pts = timeline.pts
    # slot k lies at or past the midpoint of frames j and j+1 when (p_j + p_j+1 - 2 p_0) * time_base * rate <= 2k:
    # integer arithmetic, so a long clip's grid costs no fraction arithmetic per slot
    scale = timeline.time_base * rate
    num, den = scale.numerator, scale.denominator
    chosen, j = [], 0
    for k in range(slot_count(timeline, rate)):
        while j + 1 < len(pts) and (pts[j] + pts[j + 1] - 2 * pts[0]) * num <= 2 * k * den:
            j += 1
        chosen.append(pts[j])
    shown = set(chosen)
    repeated = sum(1 for a, b in zip(chosen, chosen[1:]) if a == b)
    return ConstantRateGrid(rate=rate, timeline=timeline, source_pts=tuple(chosen), repeated=repeated,
                            dropped=sum(1 for p in pts if p not in shown))


def constant_rate_grid(timeline: FrameTimeline, nominal: Fraction) -> ConstantRateGrid:
    """The grid frames are loaded onto: ``nominal`` when the timestamps fit it, else a rate chosen as the module says."""
    frames = len(timeline.pts)
    if slot_count(timeline, nominal) == frames:
        grid = grid_on(timeline, nominal)
        if not grid.resampled:
            return grid
    intervals = sorted(timeline.intervals)
    short = intervals[(len(intervals) - 1) * SHORT_INTERVAL_PERCENTILE // 100] if intervals else 0
    if short > 0:
        rate = nice_rate(1 / float(timeline.time(short)))
        if slot_count(timeline, rate) <= MAX_REPEAT_FACTOR * frames:
            return grid_on(timeline, rate)
    span = timeline.time(timeline.end - timeline.pts[0])
    return grid_on(timeline, nice_rate(frames / float(span)) if span > 0 else nominal)


def _ms(seconds: Fraction) -> str:
    return f"{float(seconds) * 1000:.0f}"


def _fps(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else f"{float(rate):.3f}"
