"""The executor on Ray: one worker per device, units spread over them, lost workers' units re-run.

Each worker is a Ray actor on one GPU (or one CPU process) that receives a stage's networks once
(they go into Ray's object store once per run and each worker fetches them on its first unit) and
then computes whatever units it is sent with the same task function the local executor calls. The
coordinator (the process running the node) keeps every clip-long state and only ships each unit's
slices, so a worker can die at any time without losing anything but the units it held: those are
sent again to another worker, while Ray restarts the lost one (``max_restarts``). Results are
yielded in unit order, so the caller combines them exactly as it does locally.

Ray is imported only when an executor is made: the pack imports and runs without it.
"""
from __future__ import annotations

import bisect
import dataclasses
import gc
import logging
import os
import tempfile
import uuid
import warnings
import weakref
from typing import Any, Iterable, Iterator, Mapping, Optional

import torch

from .protocol import DEVICE, DeviceRequest, LocalExecutor, Task, device_marker

#: Units queued per worker: one running, one waiting, so a worker never idles between units.
UNITS_PER_WORKER = 2
#: Ray restarts a worker process this often before it is replaced by a new worker.
MAX_RESTARTS = 3
#: Seconds to wait for a lost worker to come back when no other worker is left.
LOST_WORKER_TIMEOUT_S = 300.0



def _restarting_errors() -> tuple:
    """Ray's error for a call to an actor that is restarting (newer Ray: not a RayActorError)."""
    try:
        import ray

        return tuple(e for e in (getattr(ray.exceptions, "ActorUnavailableError", None),) if e is not None)
    except ImportError:
        return ()


class DeviceWorker:
    """One device's worker process: holds the current stage's networks and computes units.

    ``threads`` is the coordinator's intra-op thread count: on CPU, how a reduction is split over
    threads can change the last bit of a result, so workers split work the way the coordinator
    would and compute exactly what a single-process run computes.
    """

    def __init__(self, threads: int):
        torch.set_num_threads(threads)
        # Ray shows each GPU worker only its own GPU (CUDA_VISIBLE_DEVICES), which torch calls cuda:0.
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.held: dict[str, Any] = {}

    def pid(self) -> int:
        return os.getpid()

    def run(self, task: Task, unit, shipped: Mapping[str, tuple[str, list]]):
        networks = {name: self._hold(key, box[0]) for name, (key, box) in shipped.items()}
        networks[DEVICE] = device_marker(self.device)  # the units run here, wherever the coordinator's marker was
        with torch.inference_mode():
            return _to_host(task(networks, unit))

    def release(self) -> None:
        self.held.clear()
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _hold(self, key: str, ref):
        if key not in self.held:  # first unit of this stage here: fetch the networks once
            import ray

            shipped = ray.get(ref)
            # Networks go to the device; tensors (clip-long data such as the motion) stay in host RAM.
            value = shipped.value.to(self.device) if isinstance(shipped.value, torch.nn.Module) else shipped.value
            if value.device.type == "cpu" if isinstance(value, torch.Tensor) else self.device.type == "cpu":
                _restore_alignment(value, shipped.alignment)
            self.held[key] = value
        return self.held[key]


def _to_host(value):
    """Results travel back through host memory; the coordinator moves them where it needs them."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, (tuple, list)):
        return type(value)(_to_host(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_host(v) for k, v in value.items()}
    return value


@dataclasses.dataclass
class _Slot:
    """One worker as the coordinator sees it. ``probe``: a pending ``pid()`` call while it is suspected lost."""

    actor: Any
    busy: int = 0
    probe: Any = None
    failures: int = 0


class RayExecutor:
    """Spreads units over ``workers`` Ray actors (one GPU each when ``gpus``); see the module docstring."""

    def __init__(self, workers: int, gpus: bool, threads: int | None = None, max_restarts: int = MAX_RESTARTS):
        import ray

        self.ray = ray
        self.gpus, self.max_restarts = gpus, max_restarts
        self.threads = threads or torch.get_num_threads()
        self.slots = [_Slot(self._spawn()) for _ in range(workers)]
        try:
            self.worker_pids()  # every worker up before the first unit
        except ray.exceptions.RayActorError as exc:
            raise RuntimeError(f"the Ray workers could not start ({str(exc).strip().splitlines()[-1]}); if another "
                               "program started Ray in this process, workers may not find this pack: let the pack "
                               "start or join the cluster itself (RAY_ADDRESS)") from None
        self.replacements_left = workers
        self.reruns = 0  # units sent again after their worker was lost
        self._shipped: dict[int, tuple[weakref.ref, str, list]] = {}
        self._inflight: dict = {}

    @property
    def workers(self) -> int:
        return len(self.slots)

    def _spawn(self):
        options = dict(max_restarts=self.max_restarts, max_task_retries=0)
        options.update(num_gpus=1, num_cpus=0) if self.gpus else options.update(num_cpus=1)
        return self.ray.remote(DeviceWorker).options(**options).remote(self.threads)

    def worker_pids(self, wait_s: float = 120.0) -> list[int]:
        """The workers' process ids, waiting (up to ``wait_s``) for any that Ray is restarting."""
        import time

        deadline = time.monotonic() + wait_s
        while True:
            try:
                return self.ray.get([slot.actor.pid.remote() for slot in self.slots])
            except _restarting_errors():
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    # ------------------------------------------------------------------------------ networks

    def _ship(self, networks: Mapping[str, Any]) -> dict[str, tuple[str, list]]:
        """Each network into the object store once (per object, for as long as it lives); workers get its reference."""
        shipped = {}
        for name, value in networks.items():
            if name == DEVICE:
                continue  # each worker puts its own device there
            entry = self._shipped.get(id(value))
            if entry is None or entry[0]() is not value:
                ref = self.ray.put(_portable(value))
                entry = (weakref.ref(value), uuid.uuid4().hex, [ref])
                self._shipped[id(value)] = entry
                weakref.finalize(value, self._shipped.pop, id(value), None)
            shipped[name] = (entry[1], entry[2])  # a nested reference: workers fetch it only when missing
        return shipped

    def release(self) -> None:
        """Workers drop the stage's networks (the object store keeps them for the next stage or run)."""
        self._cancel_previous()
        calls = [slot.actor.release.remote() for slot in self.slots]
        for call in calls:
            try:
                self.ray.get(call)
            except self.ray.exceptions.RayError:
                pass  # a lost worker holds nothing any more

    def shutdown(self) -> None:
        for slot in self.slots:
            self.ray.kill(slot.actor, no_restart=True)
        self.slots = []

    # ------------------------------------------------------------------------------ the map

    def map(self, task: Task, units: Iterable, networks: Mapping[str, Any]) -> Iterator:
        ray = self.ray
        self._cancel_previous()  # a previous map left early (interrupted): drop its queued units
        shipped = self._ship(networks)
        source = enumerate(units)
        exhausted = False
        resend: list[tuple[int, Any]] = []  # units of lost workers, by index
        inflight: dict[Any, tuple[int, Any, _Slot]] = {}
        self._inflight = inflight
        finished: dict[int, Any] = {}
        next_index = 0
        while True:
            while next_index in finished:
                yield finished.pop(next_index)
                next_index += 1
            # Units of lost workers go out first; new units while the in-flight window has room.
            while resend or (not exhausted and len(inflight) + len(finished) < UNITS_PER_WORKER * len(self.slots)):
                slot = self._free_slot()
                if slot is None:
                    break
                if resend:
                    index, unit = resend.pop(0)
                else:
                    try:
                        index, unit = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                inflight[slot.actor.run.remote(task, _compact(unit), shipped)] = (index, unit, slot)
                slot.busy += 1
            if exhausted and not resend and not inflight and not finished:
                return
            probes = {slot.probe: slot for slot in self.slots if slot.probe is not None}
            # A unit may take minutes (a 4K window on a CPU worker); waiting is bounded only when no unit is out.
            ready, _ = ray.wait(list(inflight) + list(probes), num_returns=1,
                                timeout=None if inflight else LOST_WORKER_TIMEOUT_S)
            if not ready:
                raise RuntimeError(f"no worker answered for {LOST_WORKER_TIMEOUT_S:.0f} s (all {len(self.slots)} "
                                   "lost): check the Ray cluster (ray status)")
            for ref in ready:
                if ref in probes:
                    self._probed(probes[ref])
                    continue
                index, unit, slot = inflight.pop(ref)
                slot.busy = max(0, slot.busy - 1)  # 0 already when its worker was replaced meanwhile
                try:
                    finished[index] = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the unit itself failed: as it would locally
                    raise exc.as_instanceof_cause() from None
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError,
                        *_restarting_errors()):  # a worker lost or restarting: its units go to the others
                    self.reruns += 1
                    bisect.insort(resend, (index, unit), key=lambda item: item[0])
                    if slot.probe is None:
                        slot.probe = slot.actor.pid.remote()

    def _free_slot(self) -> Optional[_Slot]:
        """The least busy worker not suspected lost (``None``: all are, wait for one to come back)."""
        healthy = [slot for slot in self.slots if slot.probe is None]
        if not healthy and not self.slots:
            raise RuntimeError("every worker was lost and could not be replaced: check the Ray cluster (ray status)")
        return min(healthy, key=lambda slot: slot.busy) if healthy else None

    def _probed(self, slot: _Slot) -> None:
        """A suspected worker answered (restarted: use it again) or is gone for good (replace it)."""
        try:
            self.ray.get(slot.probe)
            slot.probe, slot.failures = None, 0
        except self.ray.exceptions.RayError:
            slot.failures += 1
            if slot.failures <= self.max_restarts:
                slot.probe = slot.actor.pid.remote()
            elif self.replacements_left > 0:
                self.replacements_left -= 1
                slot.actor, slot.probe, slot.failures, slot.busy = self._spawn(), None, 0, 0
            else:
                self.slots.remove(slot)

    def _cancel_previous(self) -> None:
        """Cancel what an earlier map still has out (it was left early, e.g. interrupted)."""
        for ref in self._inflight:
            try:
                self.ray.cancel(ref)
            except Exception:  # noqa: BLE001 - already finished or its worker is gone
                pass
        self._inflight = {}
        for slot in self.slots:
            slot.busy = 0


def _compact(unit):
    """The unit with each tensor field that views a larger tensor copied out: a pickled view carries its
    whole storage (a chunk of frames would ship the clip)."""
    if not dataclasses.is_dataclass(unit):
        return unit
    copies = {}
    for field in dataclasses.fields(unit):
        value = getattr(unit, field.name)
        if isinstance(value, torch.Tensor) and value.untyped_storage().nbytes() > value.numel() * value.element_size():
            copies[field.name] = value.clone()
    return dataclasses.replace(unit, **copies) if copies else unit


#: CPU kernels (oneDNN, MKL) pick their vector code path by how a tensor's data is aligned, which
#: changes the last bits of a result. Networks memory-mapped from a checkpoint have their weights at
#: arbitrary offsets, while a shipped copy is freshly allocated; CPU workers therefore lay each weight
#: out at the coordinator's offset modulo this many bytes, and compute exactly what it computes.
ALIGNMENT = 64


@dataclasses.dataclass
class _Shipment:
    """A network (or tensor) in host memory plus where each of its tensors sat modulo ``ALIGNMENT``."""

    value: Any
    alignment: dict


def _tensors(value) -> dict:
    if isinstance(value, torch.Tensor):
        return {"": value}
    return dict(value.named_parameters()) | dict(value.named_buffers())


def _portable(value) -> _Shipment:
    """A host-memory copy of a network or tensor to ship (the caller's object is left where it is)."""
    alignment = {name: t.data_ptr() % ALIGNMENT if t.device.type == "cpu" else 0 for name, t in _tensors(value).items()}
    if isinstance(value, torch.Tensor):
        return _Shipment(value.detach().cpu(), alignment)
    if any(t.device.type != "cpu" for t in _tensors(value).values()):
        import copy

        value = copy.deepcopy(value).cpu()
    return _Shipment(value, alignment)


def _restore_alignment(value, alignment: dict) -> None:
    """Move each contiguous tensor of ``value`` (in place) to memory at its original offset modulo ``ALIGNMENT``."""
    for name, tensor in _tensors(value).items():
        offset = alignment.get(name, 0)
        if tensor.data_ptr() % ALIGNMENT == offset or not tensor.is_contiguous() or offset % tensor.element_size():
            continue
        size = tensor.numel() * tensor.element_size()
        raw = torch.empty(size + 2 * ALIGNMENT, dtype=torch.uint8)
        start = (offset - raw.data_ptr()) % ALIGNMENT
        moved = raw[start:start + size].view(tensor.dtype).view(tensor.shape)
        moved.copy_(tensor)
        tensor.data = moved


def _importable_pack() -> str:
    """A folder that makes this pack importable on workers under the name it has here.

    The pack's folder may have any name (ComfyUI imports it under its folder name, the command-line
    tools as ``mgld_vsr``), and workers unpickle task functions and networks by module name, so the
    folder is shipped to the cluster under that name (a link in a temporary folder).
    """
    package = __name__.rsplit(".pipeline.", 1)[0]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # pipeline/workers/ -> the pack
    if os.path.basename(root) == package:
        return root
    farm = os.path.join(tempfile.gettempdir(), f"mgld-vsr-pack-{os.getuid() if hasattr(os, 'getuid') else 0}")
    link = os.path.join(farm, *package.split("."))
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.realpath(link) != os.path.realpath(root):
        temporary = f"{link}.{os.getpid()}.tmp"
        os.symlink(root, temporary)
        os.replace(temporary, link)
    return link


# ---------------------------------------------------------------------------------- cluster

_shared: dict[str, Any] = {}


def connect(gpu_ids: tuple[int, ...] = (), num_cpus: Optional[int] = None) -> None:
    """Join the Ray cluster at ``$RAY_ADDRESS``, else start one on this machine (``gpu_ids``: only these GPUs).

    Nothing happens when this process has joined a cluster already. The pack's code travels with
    the job (Ray's ``py_modules``), so the other machines need Ray and torch but not the pack.
    """
    import ray

    if ray.is_initialized():
        return
    options = dict(include_dashboard=False, logging_level=logging.WARNING,
                   runtime_env={"py_modules": [_importable_pack()]})
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**options)
        return
    env = dict(os.environ)
    try:
        if gpu_ids:  # the local cluster gets exactly these GPUs
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            visible = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
            if max(gpu_ids) >= len(visible):
                raise ValueError(f"devices asks for cuda:{max(gpu_ids)} but this machine shows {len(visible)} GPU(s): "
                                 f"use cuda:0 .. cuda:{len(visible) - 1}" if visible else "devices asks for GPUs but "
                                 "this machine has none: use 'cpu:N' or 'local'")
            physical = [visible[i] for i in gpu_ids]
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(physical)
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, **options)
    finally:
        os.environ.clear()
        os.environ.update(env)


def shared_executor(request: DeviceRequest):
    """One executor per process and setting, reused by every node (workers keep running between runs)."""
    import ray

    if request.workers is None and not ray.is_initialized() and not os.environ.get("RAY_ADDRESS") \
            and not torch.cuda.is_available():
        return _no_gpu()  # 'auto' on a machine without GPUs: not worth starting a cluster
    connect(request.gpu_ids, num_cpus=max(os.cpu_count() or 1, request.workers or 1))
    gpus = request.gpus
    cluster_gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus is None:
        gpus = cluster_gpus > 0
    workers = request.workers if request.workers is not None else cluster_gpus
    if workers < 1:
        return _no_gpu()
    if gpus and workers > cluster_gpus:
        raise ValueError(f"devices asks for {workers} GPU workers but the Ray cluster has {cluster_gpus} GPU(s): "
                         "ask for fewer, or add machines (ray start --address ...)")
    key = f"{workers}:{gpus}:{torch.get_num_threads()}"
    if key not in _shared:
        for old in _shared.values():  # other settings' workers give their devices back
            old.shutdown()
        _shared.clear()
        _shared[key] = RayExecutor(workers, gpus)
    return _shared[key]


def _no_gpu() -> LocalExecutor:
    warnings.warn("devices='auto' found no GPU, so this stage runs in this process (use 'cpu:N' for CPU workers)",
                  RuntimeWarning, stacklevel=3)
    return LocalExecutor()
