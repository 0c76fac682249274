"""Count the bytes of live tensors while code runs: a device-independent peak-memory measurement.

``LiveTensorBytes`` is a ``TorchDispatchMode``: every storage an operator creates is added to the
running total when it appears and removed when the last tensor using it is freed (views add
nothing: they share their base's storage). Run under ``meta`` tensors, full-size models cost no memory and seconds of
time, yet the count equals what an accelerator would hold, weights + activations, minus allocator
overhead (caching, fragmentation, cuDNN workspaces).
"""
from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveTensorBytes(TorchDispatchMode):
    def __init__(self, baseline: int = 0):
        super().__init__()
        self.current = self.peak = baseline
        self._seen: dict[int, weakref.ref] = {}  # id(tensor) -> weak reference (tensors do not hash by identity)
        self._storages: dict[int, list[int]] = {}  # storage id -> [tracked tensors using it, bytes]

    def track(self, *tensors_or_modules) -> int:
        """Count tensors created outside the mode (weights, inputs) as live; returns the bytes added."""
        added = 0
        for item in tensors_or_modules:
            tensors = list(item.parameters()) + list(item.buffers()) if isinstance(item, torch.nn.Module) else [item]
            for t in tensors:
                added += self._add(t)
        return added

    def _add(self, t: torch.Tensor) -> int:
        if not isinstance(t, torch.Tensor):
            return 0
        known = self._seen.get(id(t))
        if known is not None and known() is t:
            return 0
        self._seen[id(t)] = weakref.ref(t)
        storage = t.untyped_storage()
        key = storage._cdata
        weakref.finalize(t, self._release, key, id(t))
        if key in self._storages:
            self._storages[key][0] += 1
            return 0
        size = storage.nbytes()
        self._storages[key] = [1, size]
        self.current += size
        self.peak = max(self.peak, self.current)
        return size

    def _release(self, key: int, tensor_id: int) -> None:
        self._seen.pop(tensor_id, None)
        entry = self._storages[key]
        entry[0] -= 1
        if entry[0] == 0:
            self.current -= entry[1]
            del self._storages[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t)
        return out
