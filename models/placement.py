"""Where a network computes, and running one whose weights a host has left partly in host RAM.

A host's model manager (ComfyUI's, under ``--lowvram``/``--novram`` or when the GPU is full) may
load only some layers of a network onto the accelerator and keep the others in host RAM. Such a
network records the device it computes on in ``module.device`` (ComfyUI's ``ModelPatcher`` sets
it); the layers left behind are *streamed*: each copies its own weights to that device for its
forward pass and drops the copy afterwards, the host copy staying where it is. This is what
ComfyUI does for its own layers (``comfy.ops`` weight casting), done here with forward hooks
because the pack's networks are plain ``torch.nn`` modules that also run without ComfyUI.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn


def compute_device(module: nn.Module) -> torch.device:
    """The device ``module`` computes on: the one a host's model manager loaded it to, else its weights'."""
    device = module.__dict__.get("device")  # set by a model manager; never a parameter or buffer
    if isinstance(device, torch.device):
        return device
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def _device_copy(tensor: torch.Tensor, device: torch.device) -> Optional[torch.Tensor]:
    """A copy of ``tensor`` on ``device``, or None when it is there already."""
    return None if tensor.device == device else tensor.detach().to(device, copy=True)


def stream_offloaded_weights(root: nn.Module,
                             fetch: Callable[[torch.Tensor, torch.device], Optional[torch.Tensor]] = _device_copy) -> list:
    """Let every layer of ``root`` run on ``compute_device(root)`` even when its weights are elsewhere.

    Each module holding parameters or buffers (its own or its direct children's) gets a forward
    pre-hook that swaps device copies in for those that are not on the compute device, and a
    forward hook that puts the host tensors back (also when the forward raises); at most one
    block's weights are on the device at a time. Layers that are on the device are left
    alone, so a fully loaded network runs exactly as before. ``fetch(tensor, device)`` returns
    the copy to use, or None for a tensor that is on the device (tests pass their own).
    Returns the hook handles; installing twice on the same network is a no-op.
    """
    if root.__dict__.get("_mgld_streaming"):
        return []
    handles = []

    def own(module):
        """``(table, name, tensor)`` of the parameters and buffers ``module`` holds itself."""
        return [(table, name, t) for table in (module._parameters, module._buffers) for name, t in table.items()
                if t is not None]

    def before(module, _args):
        swapped = []
        module.__dict__.setdefault("_mgld_swapped", []).append(swapped)
        if root.__dict__.get("model_lowvram") is False:
            return  # the manager loaded the whole network (ComfyUI's ModelPatcher records it): nothing to do
        device = compute_device(root)
        # A module may compute with its direct children's weights without calling them (e.g. the
        # temporal convolution taking its conv's kernel apart), so those are swapped in too. The
        # device copy replaces the tensor in its module's table for the call; the host tensor
        # itself is not modified (assigning ``.data`` across device types is not always allowed).
        for table, name, tensor in [*own(module), *(entry for child in module.children() for entry in own(child))]:
            copy = fetch(tensor, device)
            if copy is not None:
                swapped.append((table, name, tensor))
                table[name] = copy

    def after(module, _args, _output):
        for table, name, tensor in reversed(module.__dict__["_mgld_swapped"].pop()):
            table[name] = tensor

    for module in root.modules():
        if own(module) or any(own(child) for child in module.children()):
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(after, always_call=True))
    root.__dict__["_mgld_streaming"] = True
    return handles
