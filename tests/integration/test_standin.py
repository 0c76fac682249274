"""The shipped stand-in model (benchmarks/standin/) loads through the normal loaders and behaves like a
trained network on frames it never saw: it denoises far better than the trivial predictors, its
prediction at a pixel uses the picture around it, and its autoencoder reconstructs the frames.

The held-out sample (5 frames of Big Buck Bunny, 256x256 HR, their x4-degraded LR) is stored next
to the weights, so the test needs no download.
"""
import pathlib

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from mgld_vsr.models.bundle import load_diffusion
from mgld_vsr.models.loader import load_component
from mgld_vsr.pipeline.frames import bicubic_upsample, uint8_to_model_range
from mgld_vsr.pipeline.defaults import LATENT_SCALE
from mgld_vsr.pipeline.sampling.schedule import base_schedule

WEIGHTS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "standin" / "weights"
TIMESTEPS = (20, 100, 250, 500, 900)


@pytest.fixture(scope="module")
def standin():
    diffusion = load_diffusion(str(WEIGHTS / "standin_mgldvsr.safetensors"))
    vae = load_component(WEIGHTS / "standin_video_vae.safetensors", "video_vae")
    return diffusion, vae


@pytest.fixture(scope="module")
def sample(standin):
    diffusion, _ = standin
    stored = np.load(WEIGHTS / "heldout_sample.npz")
    hr, lr = torch.from_numpy(stored["hr"]), torch.from_numpy(stored["lr"])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z_hr = LATENT_SCALE * diffusion.first_stage.encode(uint8_to_model_range(hr)).mode()
        posterior = diffusion.first_stage.encode(bicubic_upsample(uint8_to_model_range(lr), 4.0))
        z_lr = LATENT_SCALE * posterior.sample(generator=generator)
    return hr, lr, z_hr, z_lr


def predict(diffusion, x_t, z_lr, t):
    timesteps = torch.tensor([t])
    with torch.no_grad():
        cond = diffusion.lr_encoder(z_lr, timesteps)
        return diffusion.unet(x_t, timesteps, diffusion.context, cond, num_frames=x_t.shape[0])


def test_loads_in_the_official_layout(standin):
    diffusion, vae = standin
    assert diffusion.context is not None and diffusion.context.shape == (1, 77, diffusion.unet.config.context_dim)
    assert vae.num_frames == diffusion.unet.config.num_frames == 5
    assert diffusion.raft is None  # the stand-in's motion comes from classical flow, not RAFT


def test_denoises_held_out_frames_far_better_than_trivial_predictors(standin, sample):
    """Far below predicting eps = 0 at every noise level; below taking the LR latent as x0 where the
    detail is made (low t). At high t (250 and up) the LR latent is about as good an x0 as the stand-in's
    own estimate: there the small network adds little to its LR conditioning (see benchmarks/standin)."""
    diffusion, _ = standin
    _, _, z_hr, z_lr = sample
    alphas = base_schedule()["alphas_cumprod"]
    generator = torch.Generator().manual_seed(1)
    for t in TIMESTEPS:
        a = alphas[t]
        eps = torch.randn(z_hr.shape, generator=generator)
        x_t = a.sqrt() * z_hr + (1 - a).sqrt() * eps
        model = F.mse_loss(predict(diffusion, x_t, z_lr, t), eps).item()
        zero = eps.square().mean().item()  # predict eps = 0 (x0 = x_t / sqrt(a))
        from_lr = F.mse_loss((x_t - a.sqrt() * z_lr) / (1 - a).sqrt(), eps).item()  # predict x0 = the LR latent
        assert model < 0.25 * zero, (t, model, zero)
        if t <= 100:
            assert model < 0.8 * from_lr, (t, model, from_lr)


def test_prediction_uses_the_surrounding_picture(standin, sample):
    """A pixel-wise denoiser would give the centre the same prediction whatever surrounds it."""
    diffusion, _ = standin
    _, _, z_hr, z_lr = sample
    a = base_schedule()["alphas_cumprod"][500]
    eps = torch.randn(z_hr.shape, generator=torch.Generator().manual_seed(2))
    x_t = a.sqrt() * z_hr + (1 - a).sqrt() * eps
    centre = (Ellipsis, slice(8, 24), slice(8, 24))
    whole = predict(diffusion, x_t, z_lr, 500)[centre]
    alone = predict(diffusion, x_t[centre].contiguous(), z_lr[centre].contiguous(), 500)
    changed = (whole - alone).abs().mean() / whole.abs().mean()
    assert changed > 0.05, changed
    # ... and the context helps: the centre is denoised better with the picture around it.
    assert F.mse_loss(whole, eps[centre]) < F.mse_loss(alone, eps[centre])


def test_autoencoder_reconstructs_held_out_frames(standin, sample):
    """The decoder renders the picture its latent holds (not a generic texture), and the CFW features of
    the LR frames bring the result closer to the truth (what the fusion weight w is for)."""
    diffusion, vae = standin
    hr, lr, z_hr, _ = sample
    from mgld_vsr.pipeline.decoding.colorfix import adain_color_fix

    target = uint8_to_model_range(hr)
    bicubic = bicubic_upsample(uint8_to_model_range(lr), 4.0)
    with torch.no_grad():
        _, features = vae.encode(bicubic)
        decode = lambda z, w: adain_color_fix(vae.decode(z / LATENT_SCALE, features, w), bicubic)  # noqa: E731
        fused, plain = decode(z_hr, 1.0), decode(z_hr, 0.0)
        misplaced = decode(torch.roll(z_hr, 8, dims=-1), 0.0)  # the same content, 64 px off
    psnr = lambda x: 10 * torch.log10(4.0 / F.mse_loss(x.clamp(-1, 1), target)).item()  # noqa: E731
    flat = target.mean(dim=(2, 3), keepdim=True).expand_as(target)
    assert psnr(plain) > psnr(flat) + 6.0, (psnr(plain), psnr(flat))
    assert psnr(plain) > psnr(misplaced) + 6.0, (psnr(plain), psnr(misplaced))
    assert psnr(fused) > psnr(plain), (psnr(fused), psnr(plain))
