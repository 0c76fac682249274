"""The name each node shows in ComfyUI's menus, by node id; messages about a node use it too.

In a module of its own, below every node module: input validation names nodes in its messages and is
imported while the node modules load, so it cannot take the names from the package's ``__init__``
(which imports those node modules) without an import cycle.
"""

NODE_DISPLAY_NAME_MAPPINGS = {
    "MGLDDiffusionModelLoader": "MGLD Diffusion Model Loader",
    "MGLDVideoVAELoader": "MGLD Video VAE Loader",
    "MGLDRAFTLoader": "MGLD RAFT Loader",
    "MGLDLoadVideo": "MGLD Load LR Video",
    "MGLDFlow": "MGLD Flow + Occlusion",
    "MGLDSampler": "MGLD Sampler (motion-guided)",
    "MGLDSamplerOfficial": "MGLD Sampler (official script)",
    "MGLDDecode": "MGLD Temporal CFW Decode",
    "MGLDSaveVideo": "MGLD Save Video",
    "MGLDWarpingError": "MGLD Warping Error",
    "MGLDDecodeAndSave": "MGLD Decode + Save Video (long videos)",
    "MGLDInterpolateFrames": "MGLD Interpolate Frames",
    "MGLDGuidancePreview": "MGLD Guidance Preview",
}
