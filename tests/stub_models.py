"""Controlled stand-ins for the diffusion networks, for tests of the sampling *algorithm*.

``WindowConsistentDenoiser`` predicts x0 = the mean LR latent of the window it is shown, i.e. a
model that is perfectly temporally consistent inside its window and knows nothing outside it:
exactly the situation in which fixed, disjoint windows leave visible seams.
"""
import torch
from torch import nn

from mgld_vsr.pipeline.sampling.schedule import base_schedule

ABAR = base_schedule()["alphas_cumprod"].float()


class _Anchored(nn.Module):
    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the pipeline a device and dtype


class WindowConsistentDenoiser(_Anchored):
    calls = 0

    def forward(self, x, t, context, cond, num_frames=None):
        type(self).calls += 1
        frames = num_frames or 5
        a = ABAR[t].view(-1, 1, 1, 1).to(x)
        lr = cond["lr"].reshape(-1, frames, *x.shape[1:])
        x0 = lr.mean(1, keepdim=True).expand_as(lr).reshape_as(x)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()


class PassThroughEncoder(_Anchored):
    def forward(self, lr_latent, t):
        return {"lr": lr_latent}


class _Posterior:
    def __init__(self, mean):
        self.mean = mean

    def sample(self, noise=None, generator=None):
        return self.mean


class PoolingFirstStage(_Anchored):
    """Latent = 8x8 average of the RGB frame (+ one repeated channel), scaled to SD-latent magnitude."""

    def encode(self, x):
        pooled = nn.functional.avg_pool2d(x, 8) * 20
        return _Posterior(torch.cat([pooled, pooled[:, :1]], dim=1))


def stub_models():
    return {"unet": WindowConsistentDenoiser(), "lr_encoder": PassThroughEncoder(), "first_stage": PoolingFirstStage()}
