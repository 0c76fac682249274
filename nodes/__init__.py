"""ComfyUI node adapters: thin declarations that translate ComfyUI types into pipeline calls.

Node ids are a public contract (saved workflows refer to them): never rename or reorder widgets
without a version bump and regenerated workflows (see the README's "Changes" section).
"""
from .decoder import MGLDDecode
from .flow import MGLDFlow
from .interpolation import MGLDInterpolateFrames
from .loaders import MGLDDiffusionModelLoader, MGLDRAFTLoader, MGLDVideoVAELoader
from .metrics import MGLDWarpingError
from .names import NODE_DISPLAY_NAME_MAPPINGS
from .preview import MGLDGuidancePreview
from .sampler import MGLDSampler, MGLDSamplerOfficial
from .stream import MGLDDecodeAndSave
from .video import MGLDLoadVideo, MGLDSaveVideo

NODE_CLASS_MAPPINGS = {
    "MGLDDiffusionModelLoader": MGLDDiffusionModelLoader,
    "MGLDVideoVAELoader": MGLDVideoVAELoader,
    "MGLDRAFTLoader": MGLDRAFTLoader,
    "MGLDLoadVideo": MGLDLoadVideo,
    "MGLDFlow": MGLDFlow,
    "MGLDSampler": MGLDSampler,
    "MGLDSamplerOfficial": MGLDSamplerOfficial,
    "MGLDDecode": MGLDDecode,
    "MGLDSaveVideo": MGLDSaveVideo,
    "MGLDWarpingError": MGLDWarpingError,
    "MGLDDecodeAndSave": MGLDDecodeAndSave,
    "MGLDInterpolateFrames": MGLDInterpolateFrames,
    "MGLDGuidancePreview": MGLDGuidancePreview,
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
