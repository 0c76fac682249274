"""Where a stage's independent units of work run: in this process, or spread over workers.

Every stage of the pipeline is a set of units that do not depend on each other: RAFT on a chunk
of frames, the VAE encoding of a chunk, the noise prediction of one temporal window at one
denoising step, the CFW decoding of one window. A stage hands them to ``executor.map(task, units,
networks)`` and consumes the results in unit order; whatever combines several units (blending
windows, the DDPM step, the clip-level motion guidance, the colour fix) stays with the caller, so
the sampling loop remains a plain loop over steps.

``task(networks, unit)`` is a module-level function (workers import it by name) computing one
unit with the stage's ``networks``: a name -> module or tensor mapping that a worker receives once
per stage. Modules run on the worker's device; tensors (clip-long inputs every unit takes a slice
of, like the motion) stay in host memory; ``networks[DEVICE]`` is an empty tensor on the device the
unit runs on (for tasks without a network, e.g. the motion guidance). :class:`LocalExecutor`
runs each unit in this process when its result is asked for: exactly the single-device code
path. ``ray_executor.RayExecutor`` runs the same function on one worker per device, so a unit
computes the same thing wherever it runs and the output does not depend on the executor.

:func:`executor_for` turns a node's ``devices`` setting into an executor. The names both executors share
(``Task``, ``DEVICE``, :class:`LocalExecutor`, ...) are defined in :mod:`.protocol`, below this module and
:mod:`.ray_executor`, and re-exported here for callers.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Optional

from .protocol import DEVICE, LOCAL, DeviceRequest, Executor, LocalExecutor, Task, device_marker

__all__ = ["DEVICE", "DEVICES_HELP", "LOCAL", "LOCAL_DEVICES", "DeviceRequest", "Executor", "LocalExecutor", "Task",
           "check_devices", "device_marker", "executor_for", "parse_devices", "ray_available"]

#: The ``devices`` value that keeps every stage in this process (the default everywhere).
LOCAL_DEVICES = "local"
DEVICES_HELP = ("'local' (this process), 'auto' (every GPU of the Ray cluster), 'cuda:0,cuda:1' (these GPUs of "
                "this machine), 'cpu:N' (N CPU worker processes) or a number N (N workers, one GPU each when the "
                "cluster has GPUs)")


def parse_devices(devices: str, where: str = "devices") -> Optional[DeviceRequest]:
    """``None`` for ``local``; a :class:`DeviceRequest` otherwise. Raises ``ValueError`` naming the fix."""
    text = str(devices).strip().lower().replace(" ", "")
    if text in ("", LOCAL_DEVICES):
        return None
    if text == "auto":
        return DeviceRequest()
    if text.isdigit() and int(text) >= 1:
        return DeviceRequest(workers=int(text))
    if text.startswith("cpu:") and text[4:].isdigit() and int(text[4:]) >= 1:
        return DeviceRequest(workers=int(text[4:]), gpus=False)
    parts = text.split(",")
    if all(p.startswith("cuda:") and p[5:].isdigit() for p in parts):
        ids = tuple(int(p[5:]) for p in parts)
        if len(set(ids)) != len(ids):
            raise ValueError(f"{where}={devices!r}: a GPU is listed twice; list each GPU once, e.g. 'cuda:0,cuda:1'")
        return DeviceRequest(workers=len(ids), gpus=True, gpu_ids=ids)
    raise ValueError(f"{where}={devices!r} is not a device list: use {DEVICES_HELP}")


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


def local_gpu_count() -> int:
    """The CUDA GPUs this process can use (``CUDA_VISIBLE_DEVICES`` applied), numbered as ``cuda:N`` asks."""
    import torch

    return torch.cuda.device_count()


def check_devices(devices: str, where: str = "devices") -> None:
    """Raise a one-line ``ValueError`` when ``devices`` is malformed, needs Ray and Ray is missing, or names a
    GPU this machine does not have (no work done).

    ``where`` names the setting in the message, e.g. ``MGLD Sampler: devices``.
    """
    request = parse_devices(devices, where)
    if request is not None and not ray_available():
        raise ValueError(f"{where}={devices!r} spreads the work over several devices with Ray, which is not "
                         f"installed: pip install -r requirements-distributed.txt, or set it to 'local'")
    if request is not None and request.gpu_ids and not os.environ.get("RAY_ADDRESS"):
        # This machine's GPUs (a cluster's are its own): refused now, not after the models are loaded.
        shown = local_gpu_count()
        if max(request.gpu_ids) >= shown:
            raise ValueError(f"{where}={devices!r}: asks for cuda:{max(request.gpu_ids)} but this machine shows "
                             f"{shown} GPU(s); " + (f"use cuda:0 .. cuda:{shown - 1}" if shown else
                                                    "use 'cpu:N' or 'local'"))


def executor_for(devices: str, where: str = "devices"):
    """The executor a ``devices`` setting asks for (workers are started once per process and reused)."""
    request = parse_devices(devices, where)
    if request is None:
        return LOCAL
    check_devices(devices, where)
    from .ray_executor import shared_executor

    return shared_executor(request)
