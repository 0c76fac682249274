"""``unet_step``: time-aware encoder + UNet, one evaluation per case (``x`` and ``<case>.x``)."""
from golden_lib import Check
from weights_index import weights_file_with_prefix

from mgld_vsr.models.loader import load_components


def run(fixture):
    path = weights_file_with_prefix(fixture.weights_dir, "model.diffusion_model.")
    models = load_components(path, ["unet", "lr_encoder"])
    unet, encoder = models["unet"], models["lr_encoder"]
    checks = []
    cases = sorted({k[: -len("x")] for k in fixture.tensors if k == "x" or k.endswith(".x")})
    for case in cases:
        struct = encoder(fixture[case + "lr_latent"], fixture[case + "t"])
        for key, expected in fixture.tensors.items():
            if key.startswith(case + "struct_cond."):
                width = key[len(case + "struct_cond."):]
                checks.append(Check(key, struct[width], expected, rel=1e-4))
        eps = unet(fixture[case + "x"], fixture[case + "t"], fixture[case + "context"], struct)
        checks.append(Check(case + "eps", eps, fixture[case + "eps"], rel=1e-4))
    return checks
