"""The flow node keeps the clip's flows in host RAM: the accelerator holds one chunk of frames at a time.

The node runs with a storage-free (meta) copy of RAFT standing in for the accelerator, and the
pack's live-tensor counter counts only the meta tensors: exactly what the accelerator would hold.
"""
import torch

from mgld_vsr.nodes import host
from mgld_vsr.nodes.flow import MGLDFlow
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.motion.field import flow_chunk_for
from mgld_vsr.pipeline.memory.estimate import LiveTensorBytes, meta_copy

LR = 32  # LR side: the flow runs at 128x128 (the x4 plan upsamples short sides to 512 px, RAFT at a quarter)


def _device_peak(monkeypatch, raft, frames):
    monkeypatch.setattr(host, "compute_device", lambda: torch.device("meta"))
    monkeypatch.setattr(host, "offload_device", lambda: torch.device("meta"))
    with torch.inference_mode(False), LiveTensorBytes(device="meta") as mem:
        mem.track(raft)
        flow, colour, occlusion, _ = MGLDFlow().compute(raft, frames, 0.5)
    # what the node hands on is all in host RAM
    for tensor in (flow.flows_forward, flow.flows_backward, flow.tail_forward, flow.cuts, flow.cut_scores,
                   colour, occlusion):
        assert tensor.device.type == "cpu"
    assert flow.flows_forward.shape[0] == frames.shape[0] - 1
    return mem.peak


def test_flow_node_device_memory_does_not_grow_with_the_clip(monkeypatch, tiny_models):
    raft = meta_copy(tiny_models["raft"], torch.float32)
    # Frames per RAFT call come from the frame size: a clip of one chunk is one call, of three chunks at least four
    # (neighbouring calls share a frame).
    plan = LRPlan.create(LR, LR, 4)
    assert plan.flow_size == (128, 128)
    chunk = flow_chunk_for(plan)
    assert chunk >= 2
    short, long = (_device_peak(monkeypatch, raft, torch.rand(n, LR, LR, 3)) for n in (chunk, 3 * chunk))
    flow_pairs_bytes = (3 * chunk - 1) * 2 * 2 * 128 * 128 * 4  # what the long clip's flows would add on the device
    assert short > 0
    assert long == short, (long, short, flow_pairs_bytes)
