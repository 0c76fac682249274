"""``occlusion``: forward-backward consistency check (masks and the two warped flows)."""
from golden_lib import Check

from mgld_vsr.pipeline.motion.flow_ops import flow_warp, occlusion_masks


def run(fixture):
    fwd, bwd = fixture["fwd_flow"], fixture["bwd_flow"]
    alpha, beta = float(fixture.meta("alpha", 0.01)), float(fixture.meta("beta", 0.5))
    fwd_occ, bwd_occ = occlusion_masks(fwd, bwd, alpha=alpha, beta=beta)
    checks = [
        Check("fwd_occ", fwd_occ.reshape(fixture["fwd_occ"].shape), fixture["fwd_occ"], mask_flip=0.001),
        Check("bwd_occ", bwd_occ.reshape(fixture["bwd_occ"].shape), fixture["bwd_occ"], mask_flip=0.001),
    ]
    if "warped_bwd_flow" in fixture.tensors:
        checks.append(Check("warped_bwd_flow", flow_warp(bwd, fwd), fixture["warped_bwd_flow"], rel=1e-5))
    if "warped_fwd_flow" in fixture.tensors:
        checks.append(Check("warped_fwd_flow", flow_warp(fwd, bwd), fixture["warped_fwd_flow"], rel=1e-5))
    return checks
