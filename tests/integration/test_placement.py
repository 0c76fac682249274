"""Streaming of layers a model manager left in host RAM (ComfyUI's partial loads under --lowvram).

No second device exists on the CI machine, so every weight is treated as left behind: the host
tensors are overwritten with NaN, and the copies swapped in for each layer's forward pass come
from a clean saved set. A layer that computed with a host tensor directly (a weight the hooks
missed, e.g. one read by its parent module) would put NaN into the result; results must equal a
plain run, bit for bit, for every entry point the pipeline calls on the real networks.
"""
import copy

import pytest
import torch

from mgld_vsr.models.placement import compute_device, stream_offloaded_weights
from mgld_vsr.pipeline.defaults import LATENT_SCALE


def _as_tensor(result):
    return result if isinstance(result, torch.Tensor) else torch.cat([v.flatten() for v in result.values()])


def _streamed_run(module, run):
    """``run()`` plainly, then with every weight of ``module`` streamed from poisoned host tensors."""
    plain = _as_tensor(run())
    clean = {t.data_ptr(): t.detach().clone() for t in [*module.parameters(), *module.buffers()]}
    fetched = []

    def fetch(tensor, device):
        if tensor.data_ptr() not in clean:
            return None  # a copy swapped in by the parent module: on the device already
        fetched.append(tensor.data_ptr())
        return clean[tensor.data_ptr()].clone()

    stream_offloaded_weights(module, fetch)
    tensors = [*module.parameters(), *module.buffers()]
    for tensor in tensors:
        if tensor.is_floating_point():
            tensor.data.fill_(float("nan"))
        else:
            tensor.data.fill_(-1)  # integer buffers (none today) would be poisoned as well as they can be
    streamed = _as_tensor(run())
    after = [*module.parameters(), *module.buffers()]
    assert len(after) == len(tensors) and all(a is b for a, b in zip(after, tensors))  # host tensors put back
    return plain, streamed, set(fetched)


@pytest.mark.usefixtures("one_thread")
def test_every_network_streams_all_its_weights(tiny_models):
    g = torch.Generator().manual_seed(0)
    unet, lr_encoder, first_stage, video_vae, raft = (copy.deepcopy(tiny_models[k]) for k in
                                                       ("unet", "lr_encoder", "first_stage", "video_vae", "raft"))
    context = tiny_models["context"]
    x = torch.randn(2, 4, 16, 16, generator=g)
    t = torch.tensor([500])
    cond = tiny_models["lr_encoder"](x, t)
    image = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    pair = torch.rand(2, 3, 128, 128, generator=g)  # RAFT's smallest input
    frames = video_vae.num_frames  # the video VAE mixes whole clips of this many frames
    z_clip, lr_clip = torch.randn(frames, 4, 4, 4, generator=g), torch.rand(frames, 3, 32, 32, generator=g) * 2 - 1
    cases = {
        "lr_encoder": (lr_encoder, lambda: lr_encoder(x, t)),
        "unet": (unet, lambda: unet(x, t, context, cond, 2)),
        "first_stage.encode": (first_stage, lambda: first_stage.encode(image).mean),
        "video_vae.encode+decode": (video_vae, lambda: video_vae.decode(z_clip / LATENT_SCALE, video_vae.encode(lr_clip)[1], 0.5)),
        "raft": (raft, lambda: raft(pair[:1], pair[1:], iters=2)),
    }
    for name, (module, run) in cases.items():
        with torch.no_grad():
            plain, streamed, fetched = _streamed_run(module, run)
        assert torch.isfinite(plain).all(), name
        assert torch.equal(plain, streamed), f"{name}: a layer computed with a weight that was not streamed"
        assert fetched, name


def test_layers_on_the_compute_device_are_left_alone():
    layer = torch.nn.Linear(3, 3)
    stream_offloaded_weights(layer)  # default: stream only tensors on another device; here all are on it
    seen = []
    layer.register_forward_pre_hook(lambda module, args: seen.append(module.weight))
    expected = torch.nn.functional.linear(torch.ones(1, 3), layer.weight, layer.bias)
    assert torch.equal(layer(torch.ones(1, 3)), expected) and seen[0] is layer.weight  # the resident weight itself


def test_host_tensors_come_back_when_a_layer_fails():
    layer = torch.nn.Linear(3, 3)
    host = layer.weight
    stream_offloaded_weights(layer, lambda tensor, device: tensor.detach().clone())
    with pytest.raises(RuntimeError):
        layer(torch.ones(1, 4))  # wrong width: the forward raises after the swap
    assert layer.weight is host


def test_compute_device_prefers_the_managers_record():
    layer = torch.nn.Linear(2, 2)
    assert compute_device(layer) == torch.device("cpu")
    layer.device = torch.device("meta")  # what ComfyUI's ModelPatcher writes after loading
    assert compute_device(layer) == torch.device("meta")
    assert compute_device(torch.nn.ReLU()) == torch.device("cpu")


def test_nothing_is_streamed_when_the_manager_loaded_the_whole_network():
    layer = torch.nn.Linear(2, 2)
    fetched = []
    stream_offloaded_weights(layer, lambda tensor, device: fetched.append(tensor) or tensor.detach().clone())
    layer.model_lowvram = False  # ComfyUI's ModelPatcher after a full load
    layer(torch.ones(1, 2))
    assert fetched == []
    layer.model_lowvram = True  # after a partial load (or a partial unload for another model)
    layer(torch.ones(1, 2))
    assert len(fetched) == 2
