"""ComfyUI-MGLD-VSR: motion-guided latent diffusion for temporally consistent video super-resolution.

ComfyUI imports this file when the pack sits in ``custom_nodes/``. It must stay cheap: it only
declares node classes; models load when a node runs.
"""
NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
