"""Full-size models built on the meta device must match the real checkpoints' key manifests exactly."""
import json

import pytest

from golden_lib import REPO_ROOT
from mgld_vsr.models.loader import COMPONENTS, build_empty, classify_keys, official_config

MANIFEST_DIR = (REPO_ROOT / ".." / "shared" / "reference" / "manifests").resolve()
MANIFESTS = sorted(MANIFEST_DIR.glob("*.json"))


def _manifest_keys(path):
    data = json.loads(path.read_text())
    keys = data["keys"]
    if isinstance(data.get("keys_with_module_prefix_as_in_raft_things_pth"), (dict, list)):
        stored = data["keys_with_module_prefix_as_in_raft_things_pth"]
        keys = stored if isinstance(stored, dict) else {k: keys[k.removeprefix("module.")] for k in stored}
    return keys


def test_manifests_present():
    assert MANIFESTS, f"no manifests in {MANIFEST_DIR}"


@pytest.mark.parametrize("manifest", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_manifest_matches_our_models(manifest):
    keys = _manifest_keys(manifest)
    groups = classify_keys(keys)
    assert not groups["unknown"], f"keys our loader neither uses nor ignores: {groups['unknown'][:10]}"
    checked = 0
    for name, comp in COMPONENTS.items():
        if not groups[name]:
            continue
        prefix = next((p for p in comp.prefixes if p and groups[name][0].startswith(p)), "")
        theirs = {k[len(prefix):]: tuple(keys[k]) for k in groups[name]}
        ours = {k: tuple(v.shape) for k, v in build_empty(name, official_config(name)).state_dict().items()}
        missing_in_ours = sorted(set(theirs) - set(ours))
        absent_from_manifest = sorted(set(ours) - set(theirs))
        wrong = sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k])
        assert not missing_in_ours, f"{name}: manifest keys we do not load: {missing_in_ours[:10]}"
        assert not absent_from_manifest, f"{name}: our keys absent from the checkpoint: {absent_from_manifest[:10]}"
        assert not wrong, f"{name}: shape mismatch: {[(k, ours[k], theirs[k]) for k in wrong[:5]]}"
        checked += len(theirs)
    assert checked > 0


def test_ignored_keys_are_only_training_or_schedule_state():
    keys = _manifest_keys(MANIFEST_DIR / "mgldvsr_unet.json")
    ignored = classify_keys(keys)["ignored"]
    allowed = ("first_stage_model.decoder.", "first_stage_model.post_quant_conv.", "cond_stage_model.model.text_projection",
               "cond_stage_model.model.logit_scale")
    schedule = {"betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
                "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
                "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2"}
    assert {k for k in ignored if not k.startswith(allowed)} == schedule
