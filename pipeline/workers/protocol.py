"""What every executor is and shares: the task signature, the device entry, the in-process executor.

A module of its own below both executors: :mod:`.executor` picks an executor for a ``devices`` setting
(and so imports :mod:`.ray_executor` when one is asked for), while the Ray executor needs these names
too; with them here neither of the two imports the other back. :mod:`.executor` re-exports them, so
callers keep importing them from there. See :mod:`.executor` for how stages use an executor.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Protocol

Task = Callable[[Mapping[str, Any], Any], Any]

#: The ``networks`` entry saying where a unit runs (see :mod:`.executor`).
DEVICE = "device"
_DEVICE_MARKERS: dict[str, Any] = {}


def device_marker(device) -> Any:
    """An empty tensor on ``device``, one object per device (so an executor never ships it twice)."""
    import torch

    return _DEVICE_MARKERS.setdefault(str(device), torch.empty(0, device=device))


class Executor(Protocol):
    def map(self, task: Task, units: Iterable, networks: Mapping[str, Any]) -> Iterator:
        """``task(networks, unit)`` of every unit, yielded in unit order."""

    def release(self) -> None:
        """The stage is over: give back what its networks hold on the devices."""


class LocalExecutor:
    """Each unit in this process, computed when the caller asks for its result."""

    def map(self, task: Task, units: Iterable, networks: Mapping[str, Any]) -> Iterator:
        for unit in units:
            yield task(networks, unit)

    def release(self) -> None:
        pass


LOCAL = LocalExecutor()


@dataclasses.dataclass(frozen=True)
class DeviceRequest:
    """A parsed ``devices`` setting. ``workers`` None: one per GPU of the cluster."""

    workers: Optional[int] = None
    gpus: Optional[bool] = None  # None: GPUs when the cluster has them
    gpu_ids: tuple[int, ...] = ()  # local GPUs to start the cluster on (``cuda:0,cuda:1``)
