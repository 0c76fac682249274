"""``sampler``: a complete official ``sample_canvas`` run with the stored noise replayed."""
import json

from golden_lib import Check
from weights_index import weights_file_with_prefix

from mgld_vsr.models.loader import load_components
from mgld_vsr.pipeline.motion.field import MotionField
from mgld_vsr.pipeline.official import sample_canvas
from mgld_vsr.pipeline.sampling.schedule import respaced_schedule


def _meta_int(fixture, key, default):
    value = fixture.meta(key, default)
    return int(json.loads(value) if isinstance(value, str) else value)


def run(fixture):
    models = load_components(weights_file_with_prefix(fixture.weights_dir, "model.diffusion_model."), ["unet", "lr_encoder"])
    steps = int(fixture["ori_timesteps"].numel())
    schedule = respaced_schedule(steps)
    kwargs = fixture.meta("sample_canvas_kwargs", {}) or {}
    tile = int(kwargs.get("tile_size", fixture.meta("tile_size", 64)))
    overlap = int(kwargs.get("tile_overlap", fixture.meta("tile_overlap", 32)))
    strength = -float(kwargs.get("guidance_scale", fixture.meta("guidance_scale", -10.0)))
    pairs = fixture["flow_fwd_prop"].shape[1]
    motion = MotionField(fixture["flow_fwd_prop"][0], fixture["flow_bwd_prop"][0], fixture["fwd_occs"][0],
                         fixture["bwd_occs"][0], cuts=__import__("torch").zeros(pairs, dtype=bool))
    draws = iter(fixture[f"noise.{k}"] for k in range(steps))
    seen = {}

    def record(info):
        seen[info.step] = (info.latents.clone(), info.eps.clone())

    out = sample_canvas(models["unet"], models["lr_encoder"], fixture["x_T"], fixture["struct_cond"], fixture["context"],
                        schedule, lambda j, like: next(draws), motion=motion, strength=strength, tile=tile,
                        overlap=overlap, callback=record)
    checks = [Check("ori_timesteps", schedule.ori_timesteps, fixture["ori_timesteps"], exact=True)]
    if "tile_weights" in fixture.tensors:
        from mgld_vsr.pipeline.sampling.tiling import gaussian_tile_weights

        w = fixture["tile_weights"]
        checks.append(Check("tile_weights", gaussian_tile_weights(*w.shape).float(), w, rel=1e-6))
    if "step0.eps_stitched" in fixture.tensors:
        checks.append(Check("step0.eps_stitched", seen[0][1], fixture["step0.eps_stitched"], rel=1e-4))
    for k in range(steps):
        key = f"latents_after_step.{k}"
        if key in fixture.tensors:
            checks.append(Check(key, seen[k][0], fixture[key], rel=1e-3))
    checks.append(Check("result", out, fixture[f"latents_after_step.{steps - 1}"], rel=1e-3))
    return checks
