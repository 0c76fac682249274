#!/usr/bin/env python3
"""Run a shipped MGLD-VSR workflow without ComfyUI (the README's main job).

    python run_workflow.py workflows/mgld_vsr_basic.json --input examples/sample_lr.mp4 --output out.mp4 \\
        [--models DIR] [--set MGLDSampler.guidance_strength=5] [--set MGLDSampler.steps=20] [--no-stream] \\
        [--workers N | --ray-address ADDR] [--resume DIR [--checkpoint-every K]]

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
    parser.add_argument("workflow", help="UI- or API-format workflow JSON (e.g. workflows/mgld_vsr_basic.json)")
    parser.add_argument("--input", help="LR video for the workflow's Load LR Video node")
    parser.add_argument("--output", help="where to put the saved video (default: output/ under the current folder)")
    parser.add_argument("--models", help="folder holding the weight files (default: ./models/mgld)")
    parser.add_argument("--set", action="append", default=[], metavar="NODE.WIDGET=VALUE",
                        help="override a widget; NODE is a node id, title or type")
    parser.add_argument("--no-stream", action="store_true",
                        help="run a Decode -> Save pair as two nodes (the whole upscaled clip in RAM) instead of "
                             "streaming decoded frames into the file")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="spread flow, sampling and decoding over N Ray workers (one GPU each on a GPU machine, "
                             "else CPU processes); same output as without. Needs: pip install -r "
                             "requirements-distributed.txt")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="use the existing Ray cluster at ADDR (e.g. 10.0.0.1:6379): one worker per GPU, or "
                             "--workers N")
    parser.add_argument("--resume", metavar="DIR",
                        help="save the sampling state in DIR every few steps, and resume an interrupted run of the "
                             "same inputs and settings from its last saved step (same output)")
    parser.add_argument("--checkpoint-every", type=int, default=5, metavar="K",
                        help="with --resume: save the sampling state every K denoising steps (default 5)")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.checkpoint_every < 1:
        parser.error(f"--checkpoint-every must be at least 1, got {args.checkpoint_every}")
    if args.models:
        os.environ["MGLD_MODELS_DIR"] = os.path.abspath(args.models)
    if args.ray_address:
        os.environ["RAY_ADDRESS"] = args.ray_address
    if args.resume:
        os.environ["MGLD_RESUME_DIR"] = os.path.abspath(args.resume)
        os.environ["MGLD_CHECKPOINT_EVERY"] = str(args.checkpoint_every)
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
        if args.workers is not None or args.ray_address:
            from mgld_vsr.pipeline.executor import ray_available

            if not ray_available():
                option = "--workers" if args.workers is not None else "--ray-address"
                raise headless.WorkflowError(f"{option} spreads the run over Ray workers, but Ray is not installed: "
                                             f"pip install -r requirements-distributed.txt, or run without {option}")
            headless.set_devices(api, pack.NODE_CLASS_MAPPINGS, str(args.workers) if args.workers else "auto")
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
