#!/usr/bin/env python3
"""Template thumbnails: a frame of the sample clip beside the same frame of a workflow's result.

    python workflows/make_thumbnails.py RESULTS_DIR [--note TEXT]

``RESULTS_DIR/<workflow>/`` holds the videos a run of ``example_workflows/<workflow>.json`` saved on
the sample clip (``tests/host_check.py --out DIR`` leaves them in ``DIR/outputs``); the newest
video there is used. Writes ``example_workflows/<workflow>.jpg``, which ComfyUI's template browser
shows on the template's card. ``--note`` says which weights made the result (with random test
weights the output is noise-like: the thumbnail must not pretend otherwise).
"""
import argparse
import pathlib
import sys

import torch
from PIL import Image, ImageDraw

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from standalone import load_pack  # noqa: E402

load_pack()
from mgld_vsr.pipeline import video_io  # noqa: E402

SAMPLE = ROOT / "examples" / "sample_lr.mp4"
FRAME = 3  # a frame inside the 6 the real-host check runs, away from the clip's first frame
PANEL_HEIGHT = 300


def panel(frame: torch.Tensor, label: str) -> Image.Image:
    """An 8-bit ``[H,W,3]`` frame scaled to the panel height (nearest: LR pixels stay visible), labelled."""
    image = Image.fromarray(frame.numpy())
    width = round(image.width * PANEL_HEIGHT / image.height)
    image = image.resize((width, PANEL_HEIGHT), Image.NEAREST)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 8 + 7 * len(label), 18), fill=(0, 0, 0))
    draw.text((4, 3), label, fill=(255, 255, 255))
    return image


def thumbnail(result: pathlib.Path, note: str) -> Image.Image:
    lr = video_io.read_video(SAMPLE, start=FRAME, count=1).frames[0]
    sr = video_io.read_video(result, start=FRAME, count=1).frames[0]
    left = panel(lr, f"input {lr.shape[1]}x{lr.shape[0]}")
    right = panel(sr, f"result {sr.shape[1]}x{sr.shape[0]}")
    canvas = Image.new("RGB", (left.width + right.width + 12, PANEL_HEIGHT + 30), (24, 24, 24))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + 12, 0))
    ImageDraw.Draw(canvas).text((6, PANEL_HEIGHT + 9), note, fill=(230, 230, 230))
    return canvas


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=pathlib.Path)
    parser.add_argument("--note", default="tiny random test weights, 1 step: the result is noise-like, not the real model's")
    args = parser.parse_args()
    for workflow in sorted((ROOT / "example_workflows").glob("*.json")):
        videos = sorted((args.results / workflow.stem).glob("*.mp4"), key=lambda p: p.stat().st_mtime)
        if not videos:
            print(f"{workflow.stem}: no result video in {args.results / workflow.stem}, skipped")
            continue
        target = workflow.with_suffix(".jpg")
        thumbnail(videos[-1], args.note).save(target, quality=88)
        print(target)


if __name__ == "__main__":
    main()
