"""``vae_encode``: first-stage (SD VAE) posterior of an LR image and the scaled latents the pipeline uses."""
import torch
from golden_lib import Check
from weights_index import weights_file_with_prefix

from mgld_vsr.models.loader import load_component
from mgld_vsr.models.vae import LATENT_SCALE


def run(fixture):
    path = weights_file_with_prefix(fixture.weights_dir, "first_stage_model.")
    model = load_component(path, "first_stage")
    posterior = model.encode(fixture["image"])
    stored = fixture.tensors
    ours = {"moments": posterior.moments, "mean": posterior.mean, "logvar": posterior.logvar, "std": posterior.std,
            "z_scaled_mean": LATENT_SCALE * posterior.mode()}
    if "eps" in stored:
        ours["z_scaled_sample"] = LATENT_SCALE * posterior.sample(noise=stored["eps"])
    checks = [Check(name, value, stored[name], rel=1e-4) for name, value in ours.items() if name in stored]

    scale = fixture.meta("scale_factor")
    if scale is not None:  # the fixture's scale must be the one the pipeline hard-codes
        checks.append(Check("scale_factor", torch.tensor(LATENT_SCALE), torch.tensor(float(scale)), exact=True))
    seed = fixture.meta("torch_manual_seed_before_sample")
    if seed is not None and "z_scaled_sample" in stored:
        # Seeding our own generator must reproduce the official torch.manual_seed + torch.randn draw.
        generator = torch.Generator().manual_seed(int(seed))
        seeded = LATENT_SCALE * posterior.sample(generator=generator)
        checks.append(Check("z_scaled_sample_from_seed", seeded, stored["z_scaled_sample"], rel=1e-4))
    return checks
