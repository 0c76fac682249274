"""Every number of the official MGLD-VSR script and every default of this pack, defined once.

Nodes, the headless runner, the pipeline, benchmarks and tests import these names instead of writing
the numbers again, so a default changes in one place. Two groups:

* ``OFFICIAL_*``: what the official inference script (``scripts/vsr_val_ddpm_text_T_vqganfin_oldcanvas_tile.py``)
  uses; official mode must use exactly these to reproduce its numbers.
* the rest: this pack's defaults for the default mode, each with the reason it differs (if it does).

The latent scale is a property of the SD 2.1 autoencoder, so it lives with the model
(:data:`models.vae.LATENT_SCALE`, re-exported here): ``models/`` imports nothing above it.
"""
from __future__ import annotations

from ..models.vae import LATENT_SCALE

__all__ = ["LATENT_SCALE"]  # the rest are plain module constants

# ------------------------------------------------------------------- the official script's numbers
#: DDPM steps (respaced from 1000), as in the paper and the script's ``--ddpm_steps``.
OFFICIAL_STEPS = 50
#: Motion-guidance strength of the released code (the step size of the warping-error gradient).
OFFICIAL_GUIDANCE_STRENGTH = 10.0
#: The script's ``--seed``.
OFFICIAL_SEED = 42
#: Frames per temporal window: the UNet's and the video VAE's temporal layers were trained on 5.
OFFICIAL_WINDOW = 5
#: Latent tile side and overlap of the script's canvas sampler (``--tile_size`` 64 / ``--tile_overlap`` 32).
OFFICIAL_LATENT_TILE = 64
OFFICIAL_LATENT_TILE_OVERLAP = 32
#: Image tiles of the script (``--vqgantile_size`` / ``--vqgantile_stride``), in pixels at the model.
OFFICIAL_IMAGE_TILE = 960
OFFICIAL_IMAGE_TILE_STRIDE = 750
#: CFW fusion weight ``w`` of the script's ``--dec_w``.
OFFICIAL_FUSION_W = 0.5
#: The script's upscale factor: the model is trained for x4.
OFFICIAL_SCALE = 4.0

# ------------------------------------------------------------------- this pack's defaults
#: Default-mode seed (any seed is as good; 0 is ComfyUI's usual first value).
SEED = 0
#: Default-mode CFW fusion weight: 1 = full fusion with the LR features (most fidelity); the official
#: script's is :data:`OFFICIAL_FUSION_W`.
FUSION_W = 1.0
#: Colour fix after decoding (the paper's AdaIN).
COLOR_FIX = "adain"
#: Spatial decode tile in pixels (0 = whole frames): bounds the CFW decoder's memory at 1080p and 4K.
DECODE_TILE_PX = 768
#: Feathered overlap of decode tiles, in latent pixels.
DECODE_TILE_OVERLAP = 8
#: Scene-cut threshold on the colour-histogram jump between neighbouring LR frames (half the L1
#: distance of 32-bin histograms per channel): a cut restarts windows and stops guidance across it.
CUT_THRESHOLD = 0.5
