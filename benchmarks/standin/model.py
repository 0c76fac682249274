"""The stand-in model: the pack's own MGLD-VSR network classes at a small configuration.

Every network is the class the pack runs the real weights with (``models/unet.py``,
``lr_encoder.py``, ``vae.py``, ``video_vae.py``, ``text_encoder.py``), so the stand-in exercises
the same code. The sizes are chosen for training on a CPU in minutes: 32/64 channels, one residual
block per level, spatial attention at the two middle levels (a 32x32 latent tile, the stand-in's
native tile, is the real model's 64x64 one at half scale), 5-frame temporal layers as in the real
model. Weights are saved in the official key layout (``model.diffusion_model.*`` ...) and load
through ``models/loader.py`` like the official files; the one value shapes cannot tell (attention
head width) travels in the safetensors metadata.
"""
from __future__ import annotations

import json
import pathlib

import torch
from torch import nn

import _path  # noqa: F401  (registers the package ``mgld_vsr``)
from mgld_vsr.models.clip_tokenizer import tokenize
from mgld_vsr.models.lr_encoder import LREncoderConfig, TimeAwareLREncoder
from mgld_vsr.models.text_encoder import OpenCLIPTextEncoder, TextEncoderConfig
from mgld_vsr.models.unet import MGLDUNet, UNetConfig
from mgld_vsr.models.vae import EncoderConfig, FirstStageEncoder, VAEConfig
from mgld_vsr.models.video_vae import TemporalCFWVideoVAE, VideoVAEConfig
from mgld_vsr.models.temporal import SpatialTemporalConv, TemporalAttention

WEIGHTS_DIR = pathlib.Path(__file__).resolve().parent / "weights"
DIFFUSION_FILE = WEIGHTS_DIR / "standin_mgldvsr.safetensors"
VIDEO_VAE_FILE = WEIGHTS_DIR / "standin_video_vae.safetensors"
#: The latent tile (in latent pixels) the stand-in was trained at: what 64 is for the real model.
NATIVE_TILE = 32

HEAD_CHANNELS = 16
ENCODER = EncoderConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1, z_channels=4)
VIDEO_VAE = VideoVAEConfig(encoder=ENCODER, embed_dim=4, num_fuse_blocks=1, fuse_growth=32, num_frames=5)
FIRST_STAGE = VAEConfig(encoder=ENCODER, embed_dim=4)
UNET = UNetConfig(model_channels=32, channel_mult=(1, 1, 2, 2), num_res_blocks=1, attention_levels=(1, 2),
                  num_head_channels=HEAD_CHANNELS, context_dim=32, cond_channels=32, num_frames=5)
LR_ENCODER = LREncoderConfig(model_channels=32, out_channels=32, channel_mult=(1, 1, 2, 2), num_res_blocks=1,
                             attention_levels=(1, 2), num_heads=4)
#: A two-block text tower (the empty prompt is all it ever encodes; "penultimate" reads block 1).
TEXT = TextEncoderConfig(width=32, layers=2, heads=1, mlp_width=64)

PREFIXES = {"unet": "model.diffusion_model.", "lr_encoder": "structcond_stage_model.",
            "first_stage": "first_stage_model.", "text_encoder": "cond_stage_model.model."}


def identity_temporal(module: nn.Module) -> None:
    """Temporal layers start as the identity, so a window behaves like independent frames until
    training teaches the network to use its neighbours (temporal convs: centre tap = I; temporal
    attention: blend weight 0)."""
    for layer in module.modules():
        if isinstance(layer, SpatialTemporalConv):
            with torch.no_grad():
                layer.temporal_conv.weight.zero_()
                channels = layer.temporal_conv.weight.shape[0]
                layer.temporal_conv.weight[:, :, 1, 0, 0] = torch.eye(channels)
                layer.temporal_conv.bias.zero_()
                layer.temporal_alpha.fill_(1.0)
        elif isinstance(layer, TemporalAttention):
            with torch.no_grad():
                layer.temporal_alpha.fill_(0.0)


def zero_residual_outputs(module: nn.Module) -> None:
    """Zero the last layer of every residual branch and the output conv (the usual diffusion UNet init):
    the network starts as a near-identity and trains faster."""
    from mgld_vsr.models.blocks import LegacyAttentionBlock, ResBlock, SpatialTransformer

    for layer in module.modules():
        target = None
        if isinstance(layer, ResBlock):
            target = layer.out_layers[3]
        elif isinstance(layer, (SpatialTransformer, LegacyAttentionBlock)):
            target = layer.proj_out
        if target is not None:
            with torch.no_grad():
                target.weight.zero_()
                target.bias.zero_()


#: Initial posterior log-variance of the autoencoder. With the default init (about 0, std 1) the
#: sampled latent is mostly noise and Adam needs thousands of steps to walk the bias down.
INITIAL_LOGVAR = -6.0


def build_autoencoder(seed: int) -> TemporalCFWVideoVAE:
    torch.manual_seed(seed)
    vae = TemporalCFWVideoVAE(VIDEO_VAE)
    identity_temporal(vae)
    z = VIDEO_VAE.embed_dim
    with torch.no_grad():
        vae.quant_conv.weight[z:] *= 0.01
        vae.quant_conv.bias[z:] = INITIAL_LOGVAR
    return vae


def build_denoiser(seed: int) -> tuple[MGLDUNet, TimeAwareLREncoder]:
    torch.manual_seed(seed)
    unet, lr_encoder = MGLDUNet(UNET), TimeAwareLREncoder(LR_ENCODER)
    for net in (unet, lr_encoder):
        zero_residual_outputs(net)
    with torch.no_grad():
        unet.out[2].weight.zero_()
        unet.out[2].bias.zero_()
    identity_temporal(unet)
    return unet, lr_encoder


def build_text_encoder(seed: int) -> OpenCLIPTextEncoder:
    """A seeded random text tower: it only fixes the constant cross-attention context the UNet trains with."""
    generator = torch.Generator().manual_seed(seed)
    text = OpenCLIPTextEncoder(TEXT)
    with torch.no_grad():
        for module in text.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
        for name, param in text.named_parameters():
            if ".ln_" in name or name.startswith("ln_final"):
                continue
            if name.endswith("bias"):
                param.zero_()
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    return text


def empty_context(text: OpenCLIPTextEncoder) -> torch.Tensor:
    """What the diffusion loader computes at load time (``models/bundle.py``): the empty prompt's context."""
    with torch.no_grad():
        return text.encode(tokenize([""])).float()


def first_stage_from(vae: TemporalCFWVideoVAE) -> FirstStageEncoder:
    """The first stage is the video VAE's encoder (the official CFW VAE reuses SD's encoder the same way)."""
    first = FirstStageEncoder(FIRST_STAGE)
    first.encoder.load_state_dict(vae.encoder.state_dict())
    first.quant_conv.load_state_dict(vae.quant_conv.state_dict())
    return first


def rescale_latent(vae: TemporalCFWVideoVAE, factor: float) -> None:
    """Make the encoder's latent ``factor`` times larger without changing what the decoder produces.

    quant_conv's mean rows are scaled by ``factor`` and its log-variance rows shifted by
    ``2 ln factor`` (the posterior scales as a whole); post_quant_conv divides its input by ``factor``.
    """
    z = vae.config.embed_dim
    with torch.no_grad():
        vae.quant_conv.weight[:z] *= factor
        vae.quant_conv.bias[:z] *= factor
        vae.quant_conv.bias[z:] += 2.0 * float(torch.log(torch.tensor(factor)))
        vae.post_quant_conv.weight /= factor


def save(unet, lr_encoder, first_stage, text, vae, info: dict, dtype=torch.float16) -> None:
    """Write the two weight files in the official key layout (``dtype`` storage)."""
    from safetensors.torch import save_file

    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, net in (("unet", unet), ("lr_encoder", lr_encoder), ("first_stage", first_stage), ("text_encoder", text)):
        for key, value in net.state_dict().items():
            tensors[PREFIXES[name] + key] = value.detach().to(dtype).contiguous()
    metadata = {"config": json.dumps({"num_head_channels": HEAD_CHANNELS}), "mgld_standin": json.dumps(info)}
    _save_atomic(tensors, DIFFUSION_FILE, metadata, save_file)
    vae_tensors = {k: v.detach().to(dtype).contiguous() for k, v in vae.state_dict().items()}
    _save_atomic(vae_tensors, VIDEO_VAE_FILE, {"mgld_standin": json.dumps(info)}, save_file)


def _save_atomic(tensors, path: pathlib.Path, metadata, save_file) -> None:
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata=metadata)
    partial.replace(path)


def load(device="cpu", dtype=torch.float32) -> dict:
    """The shipped stand-in through the pack's normal loaders: ``unet``, ``lr_encoder``, ``first_stage``,
    ``context`` (from its text encoder, as the diffusion loader node computes it) and ``video_vae``."""
    from mgld_vsr.models.bundle import load_diffusion
    from mgld_vsr.models.loader import load_component

    for path in (DIFFUSION_FILE, VIDEO_VAE_FILE):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the stand-in weights are missing; train them with "
                                    "python benchmarks/standin/train.py")
    diffusion = load_diffusion(str(DIFFUSION_FILE), dtype=dtype, device=device)
    return {**diffusion.networks(), "context": diffusion.require_context(),
            "video_vae": load_component(str(VIDEO_VAE_FILE), "video_vae", dtype=dtype, device=device)}
