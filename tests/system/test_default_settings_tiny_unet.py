"""The sampler node at its default settings, with the tiny fixture networks (a real UNet, VAE encoder and LR
encoder), executes the sampling plan tile by tile: the same check as the integration tier's stand-in run
(tests/node_plan_check.py), through the real networks. About 45 s on 2 cores: system tier."""
from node_plan_check import check_node_defaults_execute_the_plan


def test_node_defaults_denoise_every_pixel_once_per_step_with_moving_borders(tiny_models, monkeypatch):
    networks = {name: tiny_models[name] for name in ("unet", "lr_encoder", "first_stage")}
    check_node_defaults_execute_the_plan(networks, tiny_models["context"], monkeypatch)
