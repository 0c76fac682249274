"""Render the project's small low-resolution test clip: ``examples/sample_lr.mp4``.

Two shots of 12 frames each at 24000/1001 fps, 128x96 pixels:
  shot 1 - a green/blue smooth-noise texture drifting right by 2 px per frame, caption "MGLD",
           with a 440 Hz tone;
  shot 2 - a red/orange texture with diagonal stripes drifting left by 3 px and up by 1 px per
           frame, caption "VSR", with a 660 Hz tone.
The cut in the middle exercises scene-cut handling; the blocky captions give sharp edges to
super-resolve. Everything is seeded, and x264 runs single-threaded, so the file is reproducible.

Needs only numpy, torch and PyAV:  python examples/make_sample_clip.py [output.mp4]
"""
from __future__ import annotations

import os
import sys
from fractions import Fraction

import av
import numpy as np
import torch
from torch.nn import functional as F

HEIGHT, WIDTH = 96, 128
FRAMES = 24
CUT = 12  # first frame of shot 2
FPS = Fraction(24000, 1001)
SAMPLE_RATE = 48000
TONES = (440.0, 660.0)  # Hz, one per shot
# swscale flags: bicubic | accurate rounding | full chroma interpolation in and out (the default path
# darkens 4:2:0 conversions by 1-2 levels)
ACCURATE_SCALING = 4 | 0x40000 | 0x2000 | 0x4000
OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample_lr.mp4")

# 5x7 block letters, '#' = ink.
GLYPHS = {
    "M": ["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"],
    "G": [".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".###."],
    "L": ["#....", "#....", "#....", "#....", "#....", "#....", "#####"],
    "D": ["####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."],
    "V": ["#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."],
    "S": [".####", "#....", "#....", ".###.", "....#", "....#", "####."],
    "R": ["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"],
}


def text_mask(text: str, scale: int) -> np.ndarray:
    """Boolean ink mask of ``text`` in the block font, each font pixel ``scale`` x ``scale``."""
    gap = np.zeros((7, 1), bool)
    columns = []
    for i, char in enumerate(text):
        if i:
            columns.append(gap)
        columns.append(np.array([[c == "#" for c in row] for row in GLYPHS[char]]))
    mask = np.concatenate(columns, axis=1)
    return mask.repeat(scale, axis=0).repeat(scale, axis=1)


def smooth_noise(generator: torch.Generator, height: int, width: int, cells: tuple[int, ...]) -> np.ndarray:
    """Sum of bicubically enlarged random grids (coarse to fine), normalised to [0, 1]."""
    field = torch.zeros(1, 1, height, width)
    for octave, cell in enumerate(cells):
        grid = torch.rand(1, 1, height // cell + 3, width // cell + 3, generator=generator)
        big = F.interpolate(grid, scale_factor=cell, mode="bicubic", align_corners=False)
        field += big[:, :, :height, :width] * 0.5**octave
    field -= field.min()
    return (field / field.max())[0, 0].numpy()


def colourise(shade: np.ndarray, mix: np.ndarray, dark: tuple, light_a: tuple, light_b: tuple) -> np.ndarray:
    """Blend two light colours by ``mix``, then shade from ``dark`` by ``shade``; float RGB in [0, 1]."""
    light = (1 - mix[..., None]) * np.array(light_a) + mix[..., None] * np.array(light_b)
    return (1 - shade[..., None]) * np.array(dark) + shade[..., None] * light


def stamp(image: np.ndarray, mask: np.ndarray, top: int, left: int, ink: tuple) -> None:
    """Draw ``mask`` in ``ink`` with a one-pixel dark shadow (down-right), in place."""
    h, w = mask.shape
    shadow = image[top + 1 : top + 1 + h, left + 1 : left + 1 + w]
    shadow[mask] = 0.05
    image[top : top + h, left : left + w][mask] = ink


def render_frames() -> np.ndarray:
    g = torch.Generator().manual_seed(2024)
    travel = FRAMES * 3 + 8
    # shot 1: soft greens and blues, drifting right
    canvas1 = colourise(
        smooth_noise(g, HEIGHT, WIDTH + travel, (32, 12, 5, 2)),
        smooth_noise(g, HEIGHT, WIDTH + travel, (48, 16)),
        dark=(0.05, 0.12, 0.10), light_a=(0.55, 0.85, 0.45), light_b=(0.40, 0.65, 0.95),
    )
    # shot 2: reds and oranges with diagonal stripes, drifting left and up
    tall = HEIGHT + FRAMES + 4
    canvas2 = colourise(
        smooth_noise(g, tall, WIDTH + travel, (24, 8, 3)),
        smooth_noise(g, tall, WIDTH + travel, (40, 10)),
        dark=(0.20, 0.04, 0.03), light_a=(0.98, 0.55, 0.20), light_b=(0.95, 0.25, 0.30),
    )
    yy, xx = np.mgrid[0:tall, 0 : WIDTH + travel]
    canvas2 *= (0.8 + 0.2 * np.sign(np.sin((xx + yy) * 2 * np.pi / 9)))[..., None]

    mgld = text_mask("MGLD", 3)
    vsr = text_mask("VSR", 3)
    frames = []
    for t in range(FRAMES):
        if t < CUT:
            x0 = travel - 2 * t  # window slides left, so the content moves right
            image = canvas1[:, x0 : x0 + WIDTH].copy()
            stamp(image, mgld, 8, 8, (1.0, 1.0, 0.95))
        else:
            k = t - CUT
            x0, y0 = 3 * k, 2 + k  # window slides right and down: content moves left and up
            image = canvas2[y0 : y0 + HEIGHT, x0 : x0 + WIDTH].copy()
            stamp(image, vsr, HEIGHT - vsr.shape[0] - 8, WIDTH - vsr.shape[1] - 8, (0.95, 0.97, 1.0))
        frames.append(np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8))
    return np.stack(frames)


def render_audio() -> np.ndarray:
    """Mono float32: one tone per shot, 5 ms fades so the cut does not click."""
    def span(first: int, last: int) -> int:
        return int(round(Fraction(last - first) / FPS * SAMPLE_RATE))

    pieces = []
    fade = SAMPLE_RATE // 200
    for freq, (first, last) in zip(TONES, ((0, CUT), (CUT, FRAMES))):
        n = span(first, last)
        t = np.arange(n) / SAMPLE_RATE
        envelope = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / fade)
        pieces.append(0.3 * np.sin(2 * np.pi * freq * t) * envelope)
    return np.concatenate(pieces)[None].astype(np.float32)


def encode(path: str, frames: np.ndarray, audio: np.ndarray) -> None:
    temp = path + ".partial.mp4"
    with av.open(temp, mode="w", format="mp4", container_options={"movflags": "+faststart"}) as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"crf": "17", "preset": "slow"}
        video.codec_context.thread_count = 1  # x264 output is bit-identical run to run
        cc = video.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1  # BT.709, limited range
        sound = container.add_stream("aac", rate=SAMPLE_RATE)
        sound.layout, sound.format, sound.bit_rate = "mono", "fltp", 96000
        container.start_encoding()
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=SAMPLE_RATE, frame_size=sound.codec_context.frame_size)
        chunk = av.AudioFrame.from_ndarray(audio, format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts, chunk.time_base = SAMPLE_RATE, 0, Fraction(1, SAMPLE_RATE)
        position = 0
        for piece in resampler.resample(chunk) + resampler.resample(None):
            piece.pts, piece.time_base = position, Fraction(1, SAMPLE_RATE)
            position += piece.samples
            container.mux(sound.encode(piece))
        container.mux(sound.encode(None))
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG", interpolation=ACCURATE_SCALING
            )
            frame.pts, frame.time_base = index, 1 / FPS
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    os.replace(temp, path)


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Render the pack's sample LR clip (texture, text, a scene cut, audio).")
    parser.add_argument("output", nargs="?", default=OUTPUT, help="where to write the clip (default: examples/sample_lr.mp4)")
    path = parser.parse_args(argv[1:]).output
    encode(path, render_frames(), render_audio())
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {FRAMES} frames {WIDTH}x{HEIGHT} at {FPS} fps, cut at frame {CUT})")


if __name__ == "__main__":
    main(sys.argv)
