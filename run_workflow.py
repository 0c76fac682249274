#!/usr/bin/env python3
"""Run a shipped MGLD-VSR workflow without ComfyUI (the README's main job).

    python run_workflow.py example_workflows/mgld_vsr_basic.json --input examples/sample_lr.mp4 --output out.mp4 \\
        [--models DIR] [--set MGLDSampler.guidance_strength=5] [--set MGLDSampler.steps=20] [--no-stream]

A decoder whose frames only go to a saver runs as the streaming MGLD Decode + Save Video node (same
file; the upscaled clip is written frame by frame instead of held in RAM), so long clips fit.
"""
import argparse
import os
import shutil
import sys
import time

from standalone import load_pack

WEIGHTS_HELP = """Missing model files: {missing}
Put the official weights in {folder}:
  mgldvsr_unet.ckpt, video_vae_cfw.ckpt  - the MGLD-VSR release (links in the MGLD-VSR repository README:
                                            OneDrive or BaiduNetDisk)
  raft-things.pth                        - the original RAFT release (princeton-vl/RAFT, download_models.sh)
or point --models at the folder that holds them. Nothing is downloaded automatically."""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run an MGLD-VSR workflow file headless (no ComfyUI server).")
    parser.add_argument("workflow", help="UI- or API-format workflow JSON (e.g. example_workflows/mgld_vsr_basic.json)")
    parser.add_argument("--input", help="LR video for the workflow's Load LR Video node")
    parser.add_argument("--output", help="where to put the saved video (default: output/ under the current folder)")
    parser.add_argument("--models", help="folder holding the weight files (default: ./models/mgld)")
    parser.add_argument("--set", action="append", default=[], metavar="NODE.WIDGET=VALUE",
                        help="override a widget; NODE is a node id, title or type")
    parser.add_argument("--no-stream", action="store_true",
                        help="run a Decode -> Save pair as two nodes (the whole upscaled clip in RAM) instead of "
                             "streaming decoded frames into the file")
    args = parser.parse_args(argv)
    if args.models:
        os.environ["MGLD_MODELS_DIR"] = os.path.abspath(args.models)
    pack = load_pack()
    from mgld_vsr import headless, host

    try:
        api = headless.to_api(headless.load_workflow(args.workflow), pack.NODE_CLASS_MAPPINGS)
        if args.input:
            loaders = [n for n in api.values() if n["class_type"] == "MGLDLoadVideo"]
            if not loaders:
                raise headless.WorkflowError("--input given but the workflow has no MGLD Load LR Video node")
            for node in loaders:
                node["inputs"]["video"] = os.path.abspath(args.input)
        headless.apply_overrides(api, pack.NODE_CLASS_MAPPINGS, args.set)
        if not args.no_stream:  # same file, but RAM does not grow with the clip length
            headless.stream_to_file(api, pack.NODE_CLASS_MAPPINGS)
        missing = headless.missing_weights(api)
        if missing:
            print(WEIGHTS_HELP.format(missing=", ".join(missing), folder=host.model_dirs()[0]), file=sys.stderr)
            return 2
        start = time.perf_counter()
        results = headless.Runner(pack.NODE_CLASS_MAPPINGS).run(api)
    except (headless.WorkflowError, ValueError, FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    saved = [results[i][0] for i, n in api.items() if n["class_type"] in ("MGLDSaveVideo", headless.STREAMING_NODE)]
    if args.output and saved:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)) or ".", exist_ok=True)
        shutil.move(saved[-1], args.output)
        saved[-1] = args.output
    for path in saved:
        print(path)
    print(f"done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
