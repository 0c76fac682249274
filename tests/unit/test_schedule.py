"""Respaced DDPM schedule (README 4.1) and the single DDPM step (README 4.2)."""
import dataclasses
import math

import pytest
import torch

from mgld_vsr.pipeline.sampling.schedule import (add_posterior_noise, base_schedule, ddpm_step, kept_timesteps,
                                                 posterior_mean, predict_x0, q_sample_respace, respaced_schedule)

STEP_COUNTS = (1, 2, 3, 4, 50, 1000)
LOG_FLOOR = torch.tensor(math.log(1e-20), dtype=torch.float32)


@pytest.fixture(scope="module")
def base():
    return base_schedule()


def test_base_schedule_matches_linear_in_sqrt_definition(base):
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)
    assert base["betas"].dtype == torch.float32
    assert torch.equal(base["betas"], betas.float())
    torch.testing.assert_close(base["alphas_cumprod"], abar.float(), rtol=1e-6, atol=0)
    assert base["betas"][0].item() == pytest.approx(0.00085, rel=1e-6)
    assert base["betas"][-1].item() == pytest.approx(0.012, rel=1e-6)


@pytest.mark.parametrize(
    "steps, expected",
    [(1, [0]), (2, [0, 999]), (3, [0, 500, 999]), (4, [0, 333, 666, 999]),
     # 999/6 = 166.5 per step: Python's round sends 166.5 -> 166 and 832.5 -> 832 (ties to even).
     (7, [0, 166, 333, 500, 666, 832, 999])],
)
def test_kept_timesteps(steps, expected):
    assert kept_timesteps(steps) == expected
    assert respaced_schedule(steps).ori_timesteps.tolist() == expected


def test_kept_timesteps_50_matches_official_listing():
    kept = kept_timesteps(50)
    assert kept[:4] == [0, 20, 41, 61]
    assert kept[-3:] == [958, 979, 999]
    assert len(kept) == 50


@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_respaced_schedule_properties(steps, base):
    s = respaced_schedule(steps)
    assert s.steps == steps
    ori = s.ori_timesteps
    assert ori.dtype == torch.int64 and ori.shape == (steps,)
    assert ori[0] == 0 and (steps == 1 or ori[-1] == 999)
    assert bool((ori[1:] > ori[:-1]).all())
    for f in dataclasses.fields(s):
        value = getattr(s, f.name)
        if f.name.endswith("_1000"):
            assert value.shape == (1000,) and value.dtype == torch.float32
        elif f.name != "ori_timesteps":
            assert value.shape == (steps,) and value.dtype == torch.float32, f.name
            assert torch.isfinite(value).all(), f.name
    # The respaced cumulative products are the kept base ones (up to float32 re-multiplication).
    torch.testing.assert_close(s.alphas_cumprod, base["alphas_cumprod"][ori], rtol=2e-5, atol=0)
    assert s.alphas_cumprod_prev[0] == 1 and torch.equal(s.alphas_cumprod_prev[1:], s.alphas_cumprod[:-1])
    assert bool(((s.betas > 0) & (s.betas < 1)).all())
    # Index 0: zero posterior variance, log-variance floored at log(1e-20) (not copied from index 1).
    assert s.posterior_variance[0] == 0
    assert s.posterior_log_variance_clipped[0] == LOG_FLOOR
    assert bool((s.posterior_log_variance_clipped[1:] < 0).all())
    torch.testing.assert_close(s.sqrt_alphas_cumprod**2, s.alphas_cumprod, rtol=1e-6, atol=0)
    torch.testing.assert_close(s.sqrt_recip_alphas_cumprod, s.alphas_cumprod.double().rsqrt().float(), rtol=1e-6, atol=0)
    expected_var = s.betas.double() * (1 - s.alphas_cumprod_prev.double()) / (1 - s.alphas_cumprod.double())
    torch.testing.assert_close(s.posterior_variance.double(), expected_var, rtol=1e-6, atol=0)
    assert torch.equal(s.sqrt_alphas_cumprod_1000, base["sqrt_alphas_cumprod"])
    assert torch.equal(s.sqrt_one_minus_alphas_cumprod_1000, base["sqrt_one_minus_alphas_cumprod"])


def test_full_respacing_equals_base_schedule(base):
    s = respaced_schedule(1000)
    assert torch.equal(s.ori_timesteps, torch.arange(1000))
    assert torch.equal(s.alphas_cumprod, base["alphas_cumprod"])
    # Betas are re-derived as 1 - abar_i / abar_{i-1} in float32, hence a small relative difference.
    torch.testing.assert_close(s.betas, base["betas"], rtol=2e-4, atol=0)
    torch.testing.assert_close(s.sqrt_alphas_cumprod, base["sqrt_alphas_cumprod"], rtol=1e-6, atol=0)


def test_one_step_schedule_is_the_first_base_step(base):
    s = respaced_schedule(1)
    assert torch.equal(s.betas, 1 - base["alphas_cumprod"][:1])  # float32 1 - abar_0, not the float64 beta_0
    torch.testing.assert_close(s.betas, base["betas"][:1], rtol=2e-4, atol=0)
    assert s.posterior_log_variance_clipped[0] == LOG_FLOOR


@pytest.mark.parametrize("bad", [0, -3, 1001, 2.5, "50", True, None])
def test_invalid_step_counts_are_rejected(bad):
    with pytest.raises((ValueError, TypeError), match="ddpm steps"):
        respaced_schedule(bad)


def test_schedule_is_immutable_and_indices_are_checked():
    s = respaced_schedule(4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.betas = torch.zeros(4)
    assert s.model_timestep(3) == 999 and s.model_timestep(0) == 0
    with pytest.raises(IndexError):
        s.log_variance(4)
    with pytest.raises(IndexError):
        ddpm_step(s, -1, torch.zeros(1), torch.zeros(1), torch.zeros(1))


def test_q_sample_respace_uses_the_1000_step_buffers_at_999(base):
    s = respaced_schedule(4)
    g = torch.Generator().manual_seed(0)
    x, n = torch.randn(5, 4, 3, 3, generator=g), torch.randn(5, 4, 3, 3, generator=g)
    out = q_sample_respace(s, x, n)
    expected = base["sqrt_alphas_cumprod"][999] * x + base["sqrt_one_minus_alphas_cumprod"][999] * n
    assert torch.equal(out, expected)
    assert torch.equal(q_sample_respace(s, x, n, torch.full((5,), 999)), out)
    per_row = q_sample_respace(s, x, n, torch.tensor([0, 1, 2, 3, 999]))
    assert torch.equal(per_row[4], out[4]) and not torch.equal(per_row[0], out[0])
    with pytest.raises(ValueError):
        q_sample_respace(s, x, n[:4])


def test_ddpm_step_formula_and_noise_handling():
    s = respaced_schedule(50)
    g = torch.Generator().manual_seed(1)
    x, eps, noise = (torch.randn(5, 4, 6, 7, generator=g, dtype=torch.float64).float() for _ in range(3))
    j = 30
    d = {f.name: getattr(s, f.name)[j].double() for f in dataclasses.fields(s) if f.name != "ori_timesteps"
         and not f.name.endswith("_1000")}
    x0 = d["sqrt_recip_alphas_cumprod"] * x.double() - d["sqrt_recipm1_alphas_cumprod"] * eps.double()
    mean = d["posterior_mean_coef1"] * x0 + d["posterior_mean_coef2"] * x.double()
    expected = mean + (0.5 * d["posterior_log_variance_clipped"]).exp() * noise.double()
    out = ddpm_step(s, j, x, eps, noise)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(out, add_posterior_noise(s, j, posterior_mean(s, j, x, eps), noise))
    # j = 0: the noise is multiplied by zero, so any noise (or None) gives the same result.
    last = ddpm_step(s, 0, x, eps, noise)
    assert torch.equal(last, ddpm_step(s, 0, x, eps, None))
    assert torch.equal(last, posterior_mean(s, 0, x, eps))
    with pytest.raises(ValueError, match="noise is required"):
        ddpm_step(s, 5, x, eps, None)
    with pytest.raises(ValueError):
        ddpm_step(s, 5, x, eps[:, :2], noise)


def test_predict_x0_inverts_forward_noising():
    s = respaced_schedule(50)
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(2, 4, 5, 5, generator=g), torch.randn(2, 4, 5, 5, generator=g)
    j = 20
    xt = s.sqrt_alphas_cumprod[j] * x0 + s.sqrt_one_minus_alphas_cumprod[j] * eps
    torch.testing.assert_close(predict_x0(s, j, xt, eps), x0, rtol=0, atol=1e-5)


def test_ddpm_step_bf16_close_to_fp32():
    s = respaced_schedule(50)
    g = torch.Generator().manual_seed(3)
    x, eps, noise = (torch.randn(5, 4, 8, 8, generator=g) for _ in range(3))
    ref = ddpm_step(s, 40, x, eps, noise)
    out = ddpm_step(s, 40, x.bfloat16(), eps.bfloat16(), noise.bfloat16())
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() <= 0.1 * ref.abs().max()


def test_schedule_moves_to_meta_device():
    s = respaced_schedule(4).to("meta")
    assert s.betas.device.type == "meta"
    x = torch.empty(5, 4, 8, 8, device="meta")
    assert ddpm_step(s, 2, x, x, x).shape == x.shape
