"""Every number of the official MGLD-VSR script and every default of this pack, defined once.

Nodes, the headless runner, the pipeline, benchmarks and tests import these names instead of writing
the numbers again, so a default changes in one place. Two groups:

* ``OFFICIAL_*``: what the official inference script (``scripts/vsr_val_ddpm_text_T_vqganfin_oldcanvas_tile.py``)
  uses; official mode must use exactly these to reproduce its numbers.
* the rest: this pack's defaults for the default mode, each with the reason it differs (if it does).

Last, the limits an input must respect, which the node widgets, the input checks
(``nodes/validation.py``) and the pipeline all apply.

The latent scale is a property of the SD 2.1 autoencoder, so it lives with the model
(:data:`models.vae.LATENT_SCALE`, re-exported here): ``models/`` imports nothing above it. Likewise
the official window is the clip length the temporal layers were trained on
(:data:`models.temporal.TRAINED_FRAMES`).
"""
from __future__ import annotations

from ..models.temporal import TRAINED_FRAMES
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
OFFICIAL_WINDOW = TRAINED_FRAMES
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
#: The script pads upsampled frames at the bottom and right to a multiple of this many pixels (by a whole
#: multiple more when a side is aligned already: ``pipeline.frames.official_padding``).
OFFICIAL_PAD_MULTIPLE = 32
#: The forward-backward consistency check of the released code: a pixel is occluded where the round
#: trip misses by more than ``alpha * (|fwd| + |bwd|) + beta`` pixels.
OFFICIAL_OCCLUSION_ALPHA = 0.01
OFFICIAL_OCCLUSION_BETA = 0.5

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
#: Scene-cut threshold on the detector's score (0..1): TransNetV2's probability that a shot ends at a
#: frame (0.5, its authors' threshold), or for the histogram detector the colour-histogram jump between
#: neighbouring LR frames (half the L1 distance of 32-bin histograms per channel; 0.5 was its default
#: too). A cut restarts windows and stops guidance across it (``pipeline/motion/cuts.py``).
CUT_THRESHOLD = 0.5
#: Scene-cut detector of the flow node: TransNetV2, trained for shot boundaries including dissolves and
#: fades (``histogram``: the pack's original detector; ``none``).
CUT_DETECTOR = "transnetv2"
#: Short side (pixels) RAFT sees by default when it runs on output frames (frame interpolation, the
#: warping error): near what RAFT was trained on (FlyingThings3D, Sintel: 368-436 px high), and 1080p
#: frames at half size, where a pair both ways takes 1.1 GiB of accelerator memory (full 1080p: 16 GiB;
#: it grows with the square of the pixel count).
RAFT_SHORT_SIDE = 540
#: Default-mode window and tile overlaps: 0 = disjoint windows and tiles whose borders move every step, so
#: each frame and latent pixel is denoised once per step (the official script blends fixed overlapping
#: tiles, :data:`OFFICIAL_LATENT_TILE_OVERLAP`, at about 3x the work at 1080p).
WINDOW_OVERLAP = 0
TILE_OVERLAP = 0
#: Accelerator memory cap of the sampler and the decoder, in GB: 0 = no cap (an out-of-memory error is
#: still retried with smaller tiles).
MEMORY_BUDGET_GB = 0.0
#: Quality of h264/h265 saves (constant rate factor: lower is better, 0 = lossless), a little better
#: than x264's own default of 23.
CRF = 19
#: How often a resumable run (the runner's ``--resume``) saves its sampling state, in denoising steps.
CHECKPOINT_EVERY = 5

# ------------------------------------------------------------------- limits of the inputs
#: Upscale factors: from x1 (a clean-up at the same size) to x8, twice what the model was trained for.
MIN_SCALE = 1.0
MAX_SCALE = 8.0
#: Latent tiles and their overlaps are whole multiples of this many latent pixels: the UNet halves a
#: tile three times, so each side must divide by 2**3 (decode tiles keep the same step).
LATENT_TILE_STEP = 8
#: Decode tiles are set in output pixels, in whole latent steps: LATENT_TILE_STEP latent pixels of 8
#: output pixels each.
DECODE_TILE_STEP = 8 * LATENT_TILE_STEP

# ------------------------------------------------------------------- guidance preview (docs/preview.md)
#: Latent pixels sampled around a preview's region, and frames beyond the decoder windows of its shown
#: frames: the context that keeps the cut tiles, windows and warps at the box's edge away from the
#: region. benchmarks/preview.py measures the difference from the full run against the margin
#: (docs/preview.md): on the stand-in the decoder's colour fix, not the sampling, limits it; 16 (a
#: quarter of the real model's 64-px tile) keeps context for 50-step runs at 1/57 of a 1080p full run.
PREVIEW_MARGIN = 16
PREVIEW_FRAME_MARGIN = 2
#: Side of the ``auto`` region, in output pixels, and the strengths a new preview node sweeps.
PREVIEW_AUTO_SIZE = 256
PREVIEW_STRENGTHS = "0, 5, 10, 20"
