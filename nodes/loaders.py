"""Loader nodes: the three official weight files from ``ComfyUI/models/mgld`` (standalone: ``./weights``)."""
from __future__ import annotations

from . import host
from ..models.bundle import load_diffusion
from ..models.loader import load_component
from .common import LOADERS, PRECISION_TOOLTIP, PRECISIONS, weight_dtype


def _files(expected: str) -> tuple[list[str], dict]:
    """Files of the weights folder, with the official name as the default when it is there."""
    files = host.list_models()
    if not files:
        files = [expected]  # shows which file is expected; loading it explains where to put it
    default = expected if expected in files else next((f for f in files if expected.split(".")[0] in f), files[0])
    return files, {"default": default}


class MGLDDiffusionModelLoader:
    DESCRIPTION = ("Loads mgldvsr_unet.ckpt (or its converted .unet.safetensors): the MGLD UNet, the time-aware LR "
                   "encoder and the SD VAE encoder. The empty-prompt text condition is computed once here.")
    CATEGORY = LOADERS
    RETURN_TYPES = ("MGLD_DIFFUSION",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The diffusion networks, for the MGLD sampler.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "ckpt_name": (_files("mgldvsr_unet.ckpt")[0], {**_files("mgldvsr_unet.ckpt")[1],
                          "tooltip": "mgldvsr_unet.ckpt from the official release (or its .unet.safetensors), "
                                     "in ComfyUI/models/mgld (standalone: ./weights)."}),
            "precision": (PRECISIONS, {"default": "auto", "tooltip": PRECISION_TOOLTIP}),
        }}

    def load(self, ckpt_name, precision):
        path = host.model_path(ckpt_name)
        device = host.compute_device()
        with host.announce(f"MGLD: loading {ckpt_name} (UNet, LR encoder, VAE encoder, text condition)"):
            return (load_diffusion(path, dtype=weight_dtype(precision, device), device=host.offload_device(),
                                   first_stage_dtype=weight_dtype(precision, device, part="vae")),)


class MGLDVideoVAELoader:
    DESCRIPTION = "Loads video_vae_cfw.ckpt: the temporal decoder with controllable feature warping (CFW)."
    CATEGORY = LOADERS
    RETURN_TYPES = ("MGLD_VIDEO_VAE",)
    RETURN_NAMES = ("video_vae",)
    OUTPUT_TOOLTIPS = ("The temporal CFW video VAE, for the MGLD decoder.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae_name": (_files("video_vae_cfw.ckpt")[0], {**_files("video_vae_cfw.ckpt")[1],
                         "tooltip": "video_vae_cfw.ckpt from the official release, "
                                    "in ComfyUI/models/mgld (standalone: ./weights)."}),
            "precision": (PRECISIONS, {"default": "auto", "tooltip": PRECISION_TOOLTIP}),
        }}

    def load(self, vae_name, precision):
        path = host.model_path(vae_name)
        dtype = weight_dtype(precision, host.compute_device(), part="vae")
        with host.announce(f"MGLD: loading {vae_name} (temporal CFW video VAE)"):
            return (load_component(path, "video_vae", dtype=dtype, device=host.offload_device()),)


class MGLDRAFTLoader:
    DESCRIPTION = ("Loads RAFT optical flow from raft-things.pth. Choosing mgldvsr_unet.ckpt instead uses the RAFT "
                   "weights stored inside it, which is what the official script ends up using.")
    CATEGORY = LOADERS
    RETURN_TYPES = ("MGLD_RAFT",)
    RETURN_NAMES = ("raft",)
    OUTPUT_TOOLTIPS = ("RAFT, for the flow + occlusion node.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "raft_name": (_files("raft-things.pth")[0], {**_files("raft-things.pth")[1],
                          "tooltip": "raft-things.pth (original RAFT release), in ComfyUI/models/mgld (standalone: ./weights)."}),
        }}

    def load(self, raft_name):
        # RAFT stays in fp32: its correlation lookups are sensitive and it is small (5 M parameters).
        path = host.model_path(raft_name)
        with host.announce(f"MGLD: loading {raft_name} (RAFT)"):
            return (load_component(path, "raft", device=host.offload_device()),)
