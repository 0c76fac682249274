"""``raft``: RAFT flows between consecutive frames (both directions) and their ``resize_flow`` versions."""
from golden_lib import Check
from weights_index import weights_file_with_prefix

from mgld_vsr.models.loader import load_component
from mgld_vsr.pipeline.motion.flow_ops import compute_flows, resize_flow

#: README section 8: RAFT flows within 1e-3 px of the official ones.
FLOW_MAX_ABS = 1e-3


def run(fixture):
    # raft-things.pth layout: every key under the DataParallel "module." prefix.
    raft = load_component(weights_file_with_prefix(fixture.weights_dir, "module.fnet."), "raft")
    iters = fixture.meta("iters")
    flows = dict(zip(("flows_forward", "flows_backward"),
                     compute_flows(raft, fixture["frames"], iters=None if iters is None else int(iters))))
    checks = []
    for name, flow in flows.items():
        checks.append(Check(name, flow, fixture[name], max_abs=FLOW_MAX_ABS))
        resized_key = name + "_resized"
        if resized_key in fixture.tensors:
            expected = fixture[resized_key]
            size = fixture.meta("resized_to") or list(expected.shape[-2:])
            resized = resize_flow(flow, size)  # [B, T-1, 2, h, w]
            if expected.dim() == 4:  # stored as the official '(b t) c h w' batch
                resized = resized.flatten(0, 1)
            checks.append(Check(resized_key, resized, expected, max_abs=FLOW_MAX_ABS))
    return checks
