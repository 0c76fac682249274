"""The flow node keeps the clip's flows in host RAM: the accelerator holds one chunk of frames at a time.

The node runs with a storage-free (meta) copy of RAFT standing in for the accelerator, and the
pack's live-tensor counter counts only the meta tensors: exactly what the accelerator would hold.
"""
import torch

from mgld_vsr.nodes import host
from mgld_vsr.nodes.flow import MGLDFlow
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.motion import field as motion_module
from mgld_vsr.pipeline.memory.estimate import LiveTensorBytes, meta_copy

LR = 32  # LR side: the flow runs at 128x128 (the x4 plan upsamples short sides to 512 px, RAFT at a quarter)
CHUNK = 8  # frames per RAFT call in this test


def _device_peak(monkeypatch, raft, frames):
    monkeypatch.setattr(host, "compute_device", lambda: torch.device("meta"))
    monkeypatch.setattr(host, "offload_device", lambda: torch.device("meta"))
    with torch.inference_mode(False), LiveTensorBytes(device="meta") as mem:
        mem.track(raft)
        flow, colour, occlusion = MGLDFlow().compute(raft, frames, 0.5)
    # what the node hands on is all in host RAM
    for tensor in (flow.flows_forward, flow.flows_backward, flow.tail_forward, flow.cuts, flow.cut_scores,
                   colour, occlusion):
        assert tensor.device.type == "cpu"
    assert flow.flows_forward.shape[0] == frames.shape[0] - 1
    return mem.peak


def test_flow_node_device_memory_does_not_grow_with_the_clip(monkeypatch, tiny_models):
    raft = meta_copy(tiny_models["raft"], torch.float32)
    # Frames per call come from the frame size; fix them at CHUNK so 8 frames fill exactly one call.
    plan = LRPlan.create(LR, LR, 4)
    assert plan.flow_size == (128, 128)
    monkeypatch.setattr(motion_module, "FLOW_PIXELS_PER_CALL", CHUNK * 128 * 128)
    assert motion_module.flow_chunk_for(plan) == CHUNK
    short, long = (_device_peak(monkeypatch, raft, torch.rand(n, LR, LR, 3)) for n in (8, 64))
    flow_pairs_bytes = 63 * 2 * 2 * 128 * 128 * 4  # what 64 frames' flows would add if they stayed on the device
    assert short > 0
    assert long == short, (long, short, flow_pairs_bytes)
