"""Golden runner for ``guidance``: one stochastic step's noise + the motion-guidance loss, gradient and update."""
from __future__ import annotations

import re

from golden_lib import Check
from mgld_vsr.pipeline.sampling.guidance import OFFICIAL_STRENGTH, warping_loss_and_grad, motion_guidance_step
from mgld_vsr.pipeline.sampling.schedule import TRAIN_TIMESTEPS, add_posterior_noise, respaced_schedule

#: README section 8: guidance rel <= 1e-5; schedule buffers rel <= 1e-6.
REL = 1e-5
REL_SCHEDULE = 1e-6
SHARED = ("flow_fwd_prop", "flow_bwd_prop", "fwd_occs", "bwd_occs")


def _case_prefixes(fixture) -> list[str]:
    found = {m.group(1) for key in fixture.tensors if (m := re.match(r"(case\d+)\.", key))}
    return sorted(found, key=lambda p: int(p[4:]))


def _steps_from_logvar(fixture, prefix: str, j: int) -> int:
    """Without metadata: the schedule length whose log-variance at step j is the stored one."""
    stored = fixture[f"{prefix}.model_log_variance"].reshape(-1)[0]
    for steps in range(j + 1, TRAIN_TIMESTEPS + 1):
        if respaced_schedule(steps).log_variance(j) == stored:
            return steps
    raise ValueError(f"{prefix}: no respaced schedule has log-variance {float(stored)} at step {j}")


def _input(fixture, prefix: str, name: str):
    """A per-case override ``caseK.<name>`` if stored, else the shared tensor."""
    key = f"{prefix}.{name}"
    return fixture[key] if key in fixture.tensors else fixture[name]


def run(fixture) -> list[Check]:
    prefixes = _case_prefixes(fixture)
    if not prefixes:
        raise KeyError("guidance fixture holds no caseK.* tensors")
    cases_meta = fixture.meta("cases") or []
    checks = []
    for prefix in prefixes:
        index = int(prefix[4:])
        info = cases_meta[index] if index < len(cases_meta) else {}
        # The respaced index the step used is what the script passed as t (first entry drives the noise mask).
        j = int(fixture[f"{prefix}.t"].reshape(-1)[0])
        if "respaced_index" in info and int(info["respaced_index"]) != j:
            raise ValueError(f"{prefix}: metadata respaced_index {info['respaced_index']} != stored t {j}")
        steps = int(info["schedule_steps"]) if "schedule_steps" in info else _steps_from_logvar(fixture, prefix, j)
        strength = -float(info["guidance_scale"]) if "guidance_scale" in info else OFFICIAL_STRENGTH
        schedule = respaced_schedule(steps)

        logvar = fixture[f"{prefix}.model_log_variance"]
        checks.append(Check(f"{prefix}.model_log_variance", schedule.log_variance(j).expand_as(logvar), logvar,
                            rel=REL_SCHEDULE))

        latents = add_posterior_noise(schedule, j, fixture[f"{prefix}.model_mean"], fixture[f"{prefix}.noise"])
        flows_fwd, flows_bwd, fwd_occ, bwd_occ = (_input(fixture, prefix, name) for name in SHARED)
        loss, grad = warping_loss_and_grad(latents, flows_fwd, flows_bwd, fwd_occ, bwd_occ)
        out = motion_guidance_step(latents, schedule, j, flows_fwd, flows_bwd, fwd_occ, bwd_occ, strength=strength)

        expected_loss = fixture[f"{prefix}.loss"]
        checks.append(Check(f"{prefix}.loss", loss.reshape(expected_loss.shape), expected_loss, rel=REL))
        checks.append(Check(f"{prefix}.grad", grad, fixture[f"{prefix}.grad"], rel=REL))
        checks.append(Check(f"{prefix}.latents_out", out, fixture[f"{prefix}.latents_out"], rel=REL))
    return checks
