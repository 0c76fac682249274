"""Golden runner for ``schedule``: every respaced buffer, the kept timesteps and the x_T noising."""
from __future__ import annotations

import dataclasses

from golden_lib import Check
from mgld_vsr.pipeline.sampling.schedule import RespacedSchedule, q_sample_respace, respaced_schedule

#: README section 8: schedule buffers rel <= 1e-6.
REL = 1e-6
Q_SAMPLE_KEYS = ("q_sample.x_start", "q_sample.noise", "q_sample.t", "q_sample.out")


def _steps(fixture) -> int:
    steps = fixture.meta("ddpm_steps")
    if steps is not None:
        return int(steps)
    for key in ("ori_timesteps", "betas", "alphas_cumprod"):
        if key in fixture.tensors:
            return int(fixture[key].shape[0])
    raise KeyError("schedule fixture has neither a 'ddpm_steps' metadata entry nor a respaced buffer")


def run(fixture) -> list[Check]:
    schedule = respaced_schedule(_steps(fixture))
    fields = {f.name for f in dataclasses.fields(RespacedSchedule)}
    checks = []
    for key in sorted(fixture.tensors):
        if key in Q_SAMPLE_KEYS:
            continue
        if key not in fields:
            raise KeyError(f"schedule fixture holds {key!r}, which this runner does not know how to check")
        actual = getattr(schedule, key)
        if key == "ori_timesteps":
            checks.append(Check(key, actual, fixture[key], exact=True))
        else:
            checks.append(Check(key, actual, fixture[key], rel=REL))
    if any(k in fixture.tensors for k in Q_SAMPLE_KEYS):
        missing = [k for k in Q_SAMPLE_KEYS if k not in fixture.tensors]
        if missing:
            raise KeyError(f"incomplete q_sample example, missing {missing}")
        out = q_sample_respace(schedule, fixture["q_sample.x_start"], fixture["q_sample.noise"], fixture["q_sample.t"])
        checks.append(Check("q_sample.out", out, fixture["q_sample.out"], rel=REL))
    return checks
