"""The golden runners must pass for any fixture set of the shared layout, not only the shipped clip.

``end_to_end``: a clip whose length is not a multiple of the segment length ends in a segment the
official script pads by repeating the last frame. The variant fixture built here keeps the shipped
(official) segments and appends two new frames, whose padded segment's expected values come from
this pack's official mode run on those frames alone (segments are independent in the script).
"""
import pathlib

import torch
from safetensors.torch import save_file

from golden_lib import discover, runner_for
from golden_runners.end_to_end import _args
from weights_index import weights_file_with_prefix
from mgld_vsr.models.loader import load_component, load_components
from mgld_vsr.pipeline.frames import LRPlan, flow_network_input
from mgld_vsr.pipeline.sampling.noise import ReplayNoise
from mgld_vsr.pipeline.official import official_super_resolve


def _shipped_end_to_end(golden_dir):
    fixtures = [f for f in discover(golden_dir) if f.kind == "end_to_end"]
    assert fixtures, f"no end_to_end fixture under {golden_dir}"
    return fixtures[0]


def _padded_segment_run(fixture, frames):
    """Official mode on ``frames`` alone (one segment, padded), with the fixture's weights, settings and noise."""
    weights = fixture.weights_dir
    diffusion = load_components(weights_file_with_prefix(weights, "model.diffusion_model."),
                                ["unet", "lr_encoder", "first_stage"])
    args = _args(fixture)
    steps = int(args.get("ddpm_steps", 3))
    noise = ReplayNoise(fixture["noise.posterior_eps"], fixture["noise.x_T"],
                        [fixture[f"noise.step{k}"] for k in range(steps)])
    trace = {}
    with torch.no_grad():
        out = official_super_resolve(
            frames, **diffusion, video_vae=load_component(weights_file_with_prefix(weights, "decoder."), "video_vae"),
            raft=load_component(weights_file_with_prefix(weights, "module."), "raft"), context=fixture["context"],
            steps=steps, dec_w=float(args.get("dec_w", 0.5)), colorfix=args.get("colorfix_type", "adain"),
            upscale=float(args.get("upscale", 4.0)), vqgantile_size=int(args.get("vqgantile_size", 960)),
            vqgantile_stride=int(args.get("vqgantile_stride", 750)), tile_overlap=int(args.get("tile_overlap", 32)),
            n_frames=int(args.get("n_frames", 5)), noise=noise, trace=trace)
    return out, trace


def test_end_to_end_runner_handles_a_padded_last_segment(golden_dir, tmp_path):
    shipped = _shipped_end_to_end(golden_dir)
    n_frames = int(_args(shipped).get("n_frames", 5))
    lr = shipped["lr_frames_uint8"]
    full = lr.shape[0] // n_frames  # whole official segments of the shipped clip
    assert full >= 1
    kept = full * n_frames
    extra = lr[[kept - 2, 0]].flip(2)  # two new frames (mirrored): a last segment of 2 real + 3 repeated frames
    new_segment = full

    out, trace = _padded_segment_run(shipped, extra)
    plan = LRPlan.create(lr.shape[1], lr.shape[2], float(_args(shipped).get("upscale", 4.0)))
    tensors = {"lr_frames_uint8": torch.cat([lr[:kept], extra]).contiguous(),
               "output_frames_uint8": torch.cat([shipped["output_frames_uint8"][:kept], out]).contiguous()}
    for key, value in shipped.tensors.items():
        if key.startswith("seg"):
            if int(key.split(".")[0][3:]) < full:
                tensors[key] = value
        elif key not in tensors:
            tensors[key] = value  # noise, context
    # The new segment's expected values: its flow input is the padded segment [a, b, b, b, b] (README 5.1).
    padded = extra[[0] + [1] * (n_frames - 1)]
    crop = shipped["seg0.flow_input_quarter_crop"].shape[-2:]
    tensors[f"seg{new_segment}.flow_input_quarter_crop"] = flow_network_input(plan.prepare(padded))[..., :crop[0], :crop[1]]
    motion = trace["seg0.motion"]
    tensors[f"seg{new_segment}.flows_fwd_prop_latent"] = motion.flows_forward
    tensors[f"seg{new_segment}.flows_bwd_prop_latent"] = motion.flows_backward
    tensors[f"seg{new_segment}.fwd_occs"] = motion.fwd_occ
    tensors[f"seg{new_segment}.bwd_occs"] = motion.bwd_occ
    for key in [k for k in trace if k.startswith("seg0.tile") and k.endswith(".samples")]:
        tensors[key.replace("seg0.", f"seg{new_segment}.", 1)] = trace[key]

    variant_dir = tmp_path / "golden"
    (variant_dir / "end_to_end").mkdir(parents=True)
    (variant_dir / "weights").symlink_to(pathlib.Path(shipped.weights_dir).resolve(), target_is_directory=True)
    metadata = dict(shipped.metadata, n_segments=str(full + 1))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(variant_dir / "end_to_end" / "padded.safetensors"),
              metadata=metadata)

    [variant] = discover(variant_dir)
    assert variant["lr_frames_uint8"].shape[0] % n_frames != 0
    with torch.no_grad():
        results = [check.evaluate() for check in runner_for("end_to_end")(variant)]
    names = {r.name for r in results}
    assert f"seg{new_segment}.flow_input_quarter_crop" in names and "output_frames_uint8" in names
    bad = [f"{r.name}: max_abs={r.max_abs:.3g} rel={r.rel:.3g} {r.note}" for r in results if not r.ok]
    assert not bad, "\n".join(bad)
