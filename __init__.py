"""ComfyUI-MGLD-VSR: motion-guided latent diffusion for temporally consistent video super-resolution.

ComfyUI imports this file when the pack sits in ``custom_nodes/``. It stays cheap: node classes
are declared and the ``models/mgld`` folder registered; models load only when a node runs.
"""
from . import host
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

host.register_model_folder()
host.install_sample_input()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
