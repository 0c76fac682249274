"""The DDPM noise schedule MGLD-VSR samples with: a 1000-step Stable-Diffusion schedule respaced to S steps.

The official inference script first builds the SD "linear" schedule (betas linear in sqrt, 0.00085 -> 0.012,
1000 steps, float64 math stored as float32), then keeps S evenly spread original timesteps and derives a
new S-step DDPM schedule from the *float32* cumulative products. Sampling walks the respaced index
j = S-1 ... 0 while the networks are conditioned on the original timestep ``ori_timesteps[j]``.

Reproducing the stored float32 buffers bit for bit requires the same precision mix as the original
(some intermediates are float32, some float64, a float32 cumulative product with a float32 accumulator),
so the buffers are computed with NumPy here and only then turned into tensors.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

#: Length of the schedule the denoiser was trained with.
TRAIN_TIMESTEPS = 1000
#: Endpoints of the SD 2.1 beta schedule (betas are linear in their square root).
BETA_START = 0.00085
BETA_END = 0.0120
#: Floor under the posterior variance before its logarithm; index 0 has variance 0 and gets log(1e-20).
POSTERIOR_VARIANCE_FLOOR = 1e-20

_RESPACED_BUFFERS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise TypeError(f"ddpm steps must be an integer, got {type(steps).__name__}")
    steps = int(steps)
    if not 1 <= steps <= TRAIN_TIMESTEPS:
        raise ValueError(f"ddpm steps must be between 1 and {TRAIN_TIMESTEPS}, got {steps}")
    return steps


def kept_timesteps(steps: int, num_timesteps: int = TRAIN_TIMESTEPS) -> list[int]:
    """Original timesteps kept by respacing to ``steps`` (one section, as ``space_timesteps(T, [S])``).

    The position advances by repeated float addition of ``(T-1)/(S-1)`` and each position is turned
    into an index with Python's ``round`` (ties to even), which is what decides e.g. 20 vs 21 for S=50.
    """
    steps = _check_steps(steps)
    if steps > num_timesteps:
        raise ValueError(f"cannot keep {steps} of {num_timesteps} timesteps")
    stride = 1 if steps <= 1 else (num_timesteps - 1) / (steps - 1)
    position = 0.0
    kept = []
    for _ in range(steps):
        kept.append(round(position))
        position += stride
    return sorted(set(kept))


def _base_schedule_np() -> dict[str, np.ndarray]:
    """The 1000-step buffers in float64 (betas via torch.linspace in float64, like the original)."""
    betas = (torch.linspace(BETA_START**0.5, BETA_END**0.5, TRAIN_TIMESTEPS, dtype=torch.float64) ** 2).numpy()
    alphas_cumprod = np.cumprod(1.0 - betas, axis=0)
    return {
        "betas": betas,
        "alphas_cumprod": alphas_cumprod,
        "sqrt_alphas_cumprod": np.sqrt(alphas_cumprod),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - alphas_cumprod),
    }


def base_schedule() -> dict[str, torch.Tensor]:
    """The training schedule as float32 tensors (``betas``, ``alphas_cumprod``, ``sqrt_*``), length 1000."""
    return {name: torch.from_numpy(value.astype(np.float32)) for name, value in _base_schedule_np().items()}


def _ddpm_buffers_np(betas: np.ndarray) -> dict[str, np.ndarray]:
    """All DDPM buffers for float32 ``betas``, with the original's float32/float64 mix, as float32 arrays.

    Arrays derived only from the float32 betas stay float32; anything touching ``alphas_cumprod_prev``
    becomes float64, because prepending the float64 ``1.0`` promotes that array.
    """
    alphas = 1.0 - betas  # float32
    alphas_cumprod = np.cumprod(alphas, axis=0)  # float32 accumulator
    alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])  # float64
    one_minus = 1.0 - alphas_cumprod  # float32
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / one_minus  # float64
    buffers = {
        "betas": betas,
        "alphas_cumprod": alphas_cumprod,
        "alphas_cumprod_prev": alphas_cumprod_prev,
        "sqrt_alphas_cumprod": np.sqrt(alphas_cumprod),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(one_minus),
        "log_one_minus_alphas_cumprod": np.log(one_minus),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod - 1),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": np.log(np.maximum(posterior_variance, POSTERIOR_VARIANCE_FLOOR)),
        "posterior_mean_coef1": betas * np.sqrt(alphas_cumprod_prev) / one_minus,
        "posterior_mean_coef2": (1.0 - alphas_cumprod_prev) * np.sqrt(alphas) / one_minus,
    }
    return {name: value.astype(np.float32) for name, value in buffers.items()}


@dataclasses.dataclass(frozen=True)
class RespacedSchedule:
    """An S-step DDPM schedule (float32 buffers of length S, index = respaced step j).

    ``ori_timesteps[j]`` is the original 0..999 timestep the networks see at step j. The two ``*_1000``
    buffers are the untouched 1000-step ones, used only to noise the LR latent into ``x_T``.
    """

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    log_one_minus_alphas_cumprod: torch.Tensor
    sqrt_recip_alphas_cumprod: torch.Tensor
    sqrt_recipm1_alphas_cumprod: torch.Tensor
    posterior_variance: torch.Tensor
    posterior_log_variance_clipped: torch.Tensor
    posterior_mean_coef1: torch.Tensor
    posterior_mean_coef2: torch.Tensor
    ori_timesteps: torch.Tensor
    sqrt_alphas_cumprod_1000: torch.Tensor
    sqrt_one_minus_alphas_cumprod_1000: torch.Tensor

    @property
    def steps(self) -> int:
        return int(self.betas.shape[0])

    def model_timestep(self, j: int) -> int:
        """Original-scale timestep given to the UNet and the time-aware encoder at respaced step j."""
        return int(self.ori_timesteps[self._index(j)])

    def log_variance(self, j: int) -> torch.Tensor:
        """Clipped posterior log-variance of step j (0-dim float32); also the guidance step size factor."""
        return self.posterior_log_variance_clipped[self._index(j)]

    def to(self, device) -> "RespacedSchedule":
        return dataclasses.replace(
            self, **{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)}
        )

    def _index(self, j) -> int:
        j = int(j)
        if not 0 <= j < self.steps:
            raise IndexError(f"respaced step {j} outside 0..{self.steps - 1}")
        return j


def respaced_schedule(steps: int) -> RespacedSchedule:
    """Build the schedule the official script samples with for ``--ddpm_steps steps`` (1..1000)."""
    steps = _check_steps(steps)
    base = _base_schedule_np()
    alphas_cumprod32 = base["alphas_cumprod"].astype(np.float32)
    kept = kept_timesteps(steps)
    # New betas from ratios of consecutive kept float32 cumulative products (float32 division).
    new_betas = []
    previous = np.float32(1.0)
    for index in kept:
        current = alphas_cumprod32[index]
        new_betas.append(np.float32(1.0) - current / previous)
        previous = current
    buffers = _ddpm_buffers_np(np.array(new_betas, dtype=np.float32))
    tensors = {name: torch.from_numpy(buffers[name]) for name in _RESPACED_BUFFERS}
    return RespacedSchedule(
        **tensors,
        ori_timesteps=torch.tensor(kept, dtype=torch.int64),
        sqrt_alphas_cumprod_1000=torch.from_numpy(base["sqrt_alphas_cumprod"].astype(np.float32)),
        sqrt_one_minus_alphas_cumprod_1000=torch.from_numpy(base["sqrt_one_minus_alphas_cumprod"].astype(np.float32)),
    )


def _per_row(values: torch.Tensor, t, x: torch.Tensor) -> torch.Tensor:
    """``values[t]`` shaped to broadcast over x: a scalar for an int t, one value per row for a 1-D t."""
    if isinstance(t, torch.Tensor) and t.dim() > 0:
        if t.dim() != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"timestep tensor of shape {tuple(t.shape)} does not match batch {x.shape[0]}")
        picked = values.to(x.device)[t.to(device=x.device, dtype=torch.long)]
        return picked.reshape(-1, *([1] * (x.dim() - 1)))
    return values.to(x.device)[int(t)]


def q_sample_respace(
    schedule: RespacedSchedule, x_start: torch.Tensor, noise: torch.Tensor, t=TRAIN_TIMESTEPS - 1
) -> torch.Tensor:
    """Noise ``x_start`` to original timestep ``t`` with the 1000-step buffers (the start latent x_T).

    ``t`` is an int (default 999, what the script uses) or a 1-D tensor with one timestep per row.
    """
    if noise.shape != x_start.shape:
        raise ValueError(f"noise shape {tuple(noise.shape)} != x_start shape {tuple(x_start.shape)}")
    work = torch.promote_types(x_start.dtype, torch.float32)
    a = _per_row(schedule.sqrt_alphas_cumprod_1000, t, x_start).to(work)
    b = _per_row(schedule.sqrt_one_minus_alphas_cumprod_1000, t, x_start).to(work)
    return (a * x_start.to(work) + b * noise.to(work)).to(x_start.dtype)


def predict_x0(schedule: RespacedSchedule, j: int, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x0 estimate from the noise prediction at respaced step j (no clipping, like the script)."""
    j = schedule._index(j)
    work = torch.promote_types(x.dtype, torch.float32)
    a = schedule.sqrt_recip_alphas_cumprod[j].to(x.device, work)
    b = schedule.sqrt_recipm1_alphas_cumprod[j].to(x.device, work)
    return a * x.to(work) - b * eps.to(work)


def posterior_mean(schedule: RespacedSchedule, j: int, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Mean of q(x_{j-1} | x_j, x0) with x0 predicted from ``eps`` (no clipping, like the script)."""
    j = schedule._index(j)
    work = torch.promote_types(x.dtype, torch.float32)
    x_w = x.to(work)
    x0 = predict_x0(schedule, j, x_w, eps)
    coef1 = schedule.posterior_mean_coef1[j].to(x.device, work)
    coef2 = schedule.posterior_mean_coef2[j].to(x.device, work)
    return coef1 * x0 + coef2 * x_w


def add_posterior_noise(
    schedule: RespacedSchedule, j: int, mean: torch.Tensor, noise: torch.Tensor | None
) -> torch.Tensor:
    """``mean + [j > 0] * exp(0.5 * logvar_j) * noise``: the stochastic part of a DDPM step.

    At j = 0 the noise is ignored (the script still draws it, so callers keep their RNG in step)
    and may be None. The result has ``mean``'s dtype.
    """
    j = schedule._index(j)
    if j == 0:
        return mean
    if noise is None:
        raise ValueError(f"noise is required for respaced step {j} > 0")
    if noise.shape != mean.shape:
        raise ValueError(f"noise shape {tuple(noise.shape)} != latent shape {tuple(mean.shape)}")
    work = torch.promote_types(mean.dtype, torch.float32)
    std = (0.5 * schedule.posterior_log_variance_clipped[j].to(mean.device, work)).exp()
    return (mean.to(work) + std * noise.to(work)).to(mean.dtype)


def ddpm_step(
    schedule: RespacedSchedule, j: int, x: torch.Tensor, eps: torch.Tensor, noise: torch.Tensor | None
) -> torch.Tensor:
    """One ancestral DDPM step x_j -> x_{j-1}: posterior mean plus (for j > 0) its std times ``noise``.

    ``noise`` may be None only at j = 0, where it is multiplied by zero anyway. Half-precision inputs
    are evaluated in float32 (x0 = a*x - b*eps with a, b up to ~15 cancels heavily) and returned in their dtype.
    """
    if eps.shape != x.shape:
        raise ValueError(f"eps shape {tuple(eps.shape)} != latent shape {tuple(x.shape)}")
    return add_posterior_noise(schedule, j, posterior_mean(schedule, j, x, eps), noise).to(x.dtype)
