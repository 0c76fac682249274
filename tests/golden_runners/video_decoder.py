"""``video_decoder``: temporal CFW video VAE – encoder posterior and features, and decodes at each fusion weight."""
import re

from golden_lib import Check
from weights_index import weights_file_with_prefix

from mgld_vsr.models.loader import load_component
from mgld_vsr.models.vae import LATENT_SCALE

DECODED = re.compile(r"^decoded\.fusion_w_(.+)$")


def _fusion_weights(fixture) -> dict[str, float]:
    """Stored decode key -> its fusion weight: parsed from the key, else the metadata ``fusion_ws`` in key order."""
    keys = [k for k in fixture.tensors if DECODED.match(k)]
    listed = fixture.meta("fusion_ws")
    weights = {}
    for i, key in enumerate(keys):
        try:
            weights[key] = float(DECODED.match(key).group(1))
        except ValueError:
            if not isinstance(listed, list) or len(listed) != len(keys):
                raise ValueError(f"cannot tell the fusion weight of {key!r} (metadata fusion_ws={listed!r})") from None
            weights[key] = float(listed[i])
    return weights


def run(fixture):
    path = weights_file_with_prefix(fixture.weights_dir, "decoder.")
    model = load_component(path, "video_vae")
    posterior, features = model.encode(fixture["image"])
    checks = []
    if "moments" in fixture.tensors:
        checks.append(Check("moments", posterior.moments, fixture["moments"], rel=1e-4))
    for key in fixture.tensors:
        if key.startswith("enc_fea."):
            checks.append(Check(key, features[int(key.split(".", 1)[1])], fixture[key], rel=1e-4))
    weights = _fusion_weights(fixture)
    if weights:
        z_vae = fixture["samples"] / LATENT_SCALE
        for key, fusion_w in weights.items():
            checks.append(Check(key, model.decode(z_vae, features, fusion_w), fixture[key], rel=1e-4))
    return checks
