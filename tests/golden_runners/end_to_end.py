"""``end_to_end``: the official script's ``main()`` on one sequence, replayed through official mode."""

from golden_lib import Check
from weights_index import weights_file_with_prefix

from mgld_vsr.models.loader import load_component, load_components
from mgld_vsr.pipeline.sampling.noise import ReplayNoise
from mgld_vsr.pipeline.official import official_super_resolve


def _args(fixture) -> dict:
    args = fixture.meta("args", []) or []
    parsed = {}
    for flag, value in zip(args[::2], args[1::2]):
        parsed[flag.lstrip("-")] = value
    return parsed


def _segment_frames(frames, segment: int, n_frames: int):
    """The frames of official segment ``segment``: the script extends the clip by repeating its last frame
    until its length is a multiple of ``n_frames`` (reference README 5.1), so a last segment may be padded."""
    count = frames.shape[0]
    return frames[[min(segment * n_frames + k, count - 1) for k in range(n_frames)]]


def run(fixture):
    weights = fixture.weights_dir
    diffusion = load_components(weights_file_with_prefix(weights, "model.diffusion_model."),
                                ["unet", "lr_encoder", "first_stage"])
    video_vae = load_component(weights_file_with_prefix(weights, "decoder."), "video_vae")
    raft = load_component(weights_file_with_prefix(weights, "module."), "raft")
    args = _args(fixture)
    steps = int(args.get("ddpm_steps", len(fixture.meta("schedule_ori_timesteps", []))))
    n_frames = int(args.get("n_frames", 5))
    noise = ReplayNoise(fixture["noise.posterior_eps"], fixture["noise.x_T"],
                        [fixture[f"noise.step{k}"] for k in range(steps)])
    trace = {}
    frames = official_super_resolve(
        fixture["lr_frames_uint8"], **diffusion, video_vae=video_vae, raft=raft, context=fixture["context"],
        steps=steps, dec_w=float(args.get("dec_w", 0.5)), colorfix=args.get("colorfix_type", "adain"),
        seed=int(args.get("seed", 42)), upscale=float(args.get("upscale", 4.0)),
        vqgantile_size=int(args.get("vqgantile_size", 960)), vqgantile_stride=int(args.get("vqgantile_stride", 750)),
        tile_overlap=int(args.get("tile_overlap", 32)), n_frames=n_frames, noise=noise, trace=trace)
    checks = []
    for key, expected in fixture.tensors.items():
        if not key.startswith("seg"):
            continue
        seg, rest = key.split(".", 1)
        motion = trace.get(f"{seg}.motion")
        if rest == "flow_input_quarter_crop":
            from mgld_vsr.pipeline.frames import flow_network_input

            h, w = expected.shape[-2:]
            plan = trace["flow"].plan
            segment = _segment_frames(fixture["lr_frames_uint8"], int(seg[3:]), n_frames)
            ours = flow_network_input(plan.prepare(segment))
            checks.append(Check(key, ours[..., :h, :w], expected, rel=1e-4))
        elif rest in ("flows_fwd_prop_latent", "flows_bwd_prop_latent"):
            ours = motion.flows_forward if "fwd" in rest else motion.flows_backward
            checks.append(Check(key, ours, expected, max_abs=1e-3))
        elif rest in ("fwd_occs", "bwd_occs"):
            checks.append(Check(key, motion.fwd_occ if rest == "fwd_occs" else motion.bwd_occ, expected, mask_flip=1e-3))
        elif rest.endswith((".init_latent", ".samples")):
            checks.append(Check(key, trace[key], expected, rel=1e-3))
        elif rest.endswith(("decoded_crop", "colorfixed_crop")):
            full = trace[key.replace("_crop", "")]
            h, w = expected.shape[-2:]
            checks.append(Check(key, full[..., :h, :w], expected, rel=1e-3))
    checks.append(Check("output_frames_uint8", frames, fixture["output_frames_uint8"], uint8=True))
    return checks
