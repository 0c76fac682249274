"""ComfyUI-MGLD-VSR: motion-guided latent diffusion for temporally consistent video super-resolution.

ComfyUI imports this file when the pack sits in ``custom_nodes/``. It stays cheap: node classes
are declared and the ``models/mgld`` folder registered; models load only when a node runs.
``WEB_DIRECTORY`` holds the help page of every node (``web/docs/<NodeName>.md``, shown in the
node help panel) and the small frontend extension that writes the warping-error figures on the node.
"""
from .nodes import host
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"
__version__ = "0.3.0"

host.register_model_folder()
host.install_sample_input()
host.show_errors_by_class_name(NODE_CLASS_MAPPINGS)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
