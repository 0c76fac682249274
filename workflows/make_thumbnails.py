#!/usr/bin/env python3
"""Template thumbnails: a frame of a workflow's result on the sample clip, with the input frame inset.

    python workflows/make_thumbnails.py RESULTS_DIR [--note TEXT]
    python workflows/make_thumbnails.py --grid WORKFLOW PICTURE.png [--note TEXT]

``RESULTS_DIR/<workflow>/`` holds the videos a run of ``example_workflows/<workflow>.json`` saved on
the sample clip (``tests/host_check.py --out DIR`` leaves them in ``DIR/outputs``); the newest
video there is used. Writes ``example_workflows/<workflow>.jpg``, which ComfyUI's template browser
shows on the template's card. ``--note`` says which weights made the result (with random test
weights the output is noise-like: the thumbnail must not pretend otherwise).
"""
import argparse
import pathlib
import sys

from PIL import Image, ImageDraw

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from run_workflow import load_pack  # noqa: E402

load_pack()
from mgld_vsr.pipeline import video_io  # noqa: E402

SAMPLE = ROOT / "examples" / "sample_lr.mp4"
FRAME = 3  # a frame inside the 6 the real-host check runs, away from the clip's first frame
WIDTH = 480  # the template browser shows the picture in a square card, up to 256 px high


def _label(draw: ImageDraw.ImageDraw, xy: tuple, text: str) -> None:
    x, y = xy
    draw.rectangle((x, y, x + 8 + 6 * len(text), y + 15), fill=(0, 0, 0))
    draw.text((x + 4, y + 2), text, fill=(255, 255, 255))


def thumbnail(result: pathlib.Path, note: str) -> Image.Image:
    """The result frame filling the picture, the LR input frame inset at its bottom right (nearest-neighbour,
    so its pixels stay visible), each labelled with its size, and a note on the weights underneath."""
    lr = video_io.read_video(SAMPLE, start=FRAME, count=1).frames[0]
    sr = video_io.read_video(result, start=FRAME, count=1).frames[0]
    main = Image.fromarray(sr.numpy())
    main = main.resize((WIDTH, round(main.height * WIDTH / main.width)), Image.BICUBIC)
    inset = Image.fromarray(lr.numpy())
    inset = inset.resize((WIDTH // 3, round(inset.height * (WIDTH // 3) / inset.width)), Image.NEAREST)
    canvas = Image.new("RGB", (WIDTH, main.height + 22), (24, 24, 24))
    canvas.paste(main, (0, 0))
    x, y = WIDTH - inset.width - 6, main.height - inset.height - 6
    canvas.paste(Image.new("RGB", (inset.width + 4, inset.height + 4), (255, 255, 255)), (x - 2, y - 2))
    canvas.paste(inset, (x, y))
    draw = ImageDraw.Draw(canvas)
    _label(draw, (x - 2, y - 20), f"input {lr.shape[1]}x{lr.shape[0]}")
    _label(draw, (4, main.height - 20), f"result {sr.shape[1]}x{sr.shape[0]}")
    draw.text((6, main.height + 5), note, fill=(230, 230, 230))
    return canvas


def grid_thumbnail(grid: pathlib.Path, note: str) -> Image.Image:
    """A workflow whose result is a picture, not a video (the guidance preview's grid of strengths): the
    picture scaled to the card's width (nearest-neighbour when enlarged: its pixels stay visible), a
    title and the note underneath."""
    picture = Image.open(grid).convert("RGB")
    scale = WIDTH / picture.width
    picture = picture.resize((WIDTH, max(1, round(picture.height * scale))),
                             Image.NEAREST if scale >= 1 else Image.LANCZOS)
    height = max(picture.height + 40, 270)
    canvas = Image.new("RGB", (WIDTH, height), (24, 24, 24))
    canvas.paste(picture, (0, (height - 40 - picture.height) // 2))
    draw = ImageDraw.Draw(canvas)
    draw.text((6, height - 34), "MGLD Guidance Preview: one frame per strength", fill=(255, 255, 255))
    draw.text((6, height - 18), note, fill=(200, 200, 200))
    return canvas


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=pathlib.Path, nargs="?")
    parser.add_argument("--note", default="tiny random test weights, 1 step: noise-like, not the real model's output")
    parser.add_argument("--grid", nargs=2, metavar=("WORKFLOW", "PNG"),
                        help="thumbnail of WORKFLOW from a picture instead (e.g. mgld_vsr_tune_guidance and the grid "
                             "benchmarks/preview.py --grid writes)")
    args = parser.parse_args()
    if args.grid:
        target = ROOT / "example_workflows" / f"{args.grid[0]}.jpg"
        grid_thumbnail(pathlib.Path(args.grid[1]), args.note).save(target, quality=90)
        print(target)
        return
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
