"""Loading the release-format files users download, converting them, and refusing bad files clearly."""
import collections
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from golden_lib import default_golden_dir
from weights_index import weights_file_with_prefix
from mgld_vsr.models.checkpoint import CheckpointError
from mgld_vsr.models.convert import convert_file
from mgld_vsr.models.loader import load_component, load_components

GOLDEN = default_golden_dir()
MAKE_RELEASE = GOLDEN.parent / "make_release.py"
ALL = ["unet", "lr_encoder", "first_stage", "text_encoder", "raft"]


@pytest.fixture(scope="session")
def release(tmp_path_factory):
    """Tiny files shaped exactly like the real downloads, built by the reference script."""
    out = tmp_path_factory.mktemp("release")
    subprocess.run([sys.executable, str(MAKE_RELEASE), str(out), "--golden-dir", str(GOLDEN)], check=True,
                   stdout=subprocess.DEVNULL)
    # The tiny checkpoint's attention head sizes are not in its shapes: users of non-official sizes put the
    # official-format YAML beside the checkpoint under the same name.
    yaml_text = (GOLDEN / "weights" / "tiny_mgldvsr.yaml").read_text()
    (out / "mgldvsr_unet.yaml").write_text(yaml_text)
    return out


def _same(module, reference: dict, prefix: str, count=5):
    ours = module.state_dict()
    keys = [k for k in reference if k.startswith(prefix) and k[len(prefix):] in ours][:count]
    assert keys, f"nothing under {prefix}"
    for key in keys:
        torch.testing.assert_close(ours[key[len(prefix):]], reference[key], rtol=0, atol=0)


def test_release_files_load_through_user_path(release):
    ldm = load_file(weights_file_with_prefix(GOLDEN / "weights", "model.diffusion_model."))
    models = load_components(release / "mgldvsr_unet.ckpt", ALL)
    _same(models["unet"], ldm, "model.diffusion_model.")
    _same(models["lr_encoder"], ldm, "structcond_stage_model.")
    _same(models["first_stage"], ldm, "first_stage_model.")
    raft_ref = load_file(weights_file_with_prefix(GOLDEN / "weights", "module."))
    _same(load_component(release / "raft-things.pth", "raft"), raft_ref, "module.")
    _same(models["raft"], raft_ref, "module.")
    vae = load_component(release / "video_vae_cfw.ckpt", "video_vae")
    _same(vae, load_file(weights_file_with_prefix(GOLDEN / "weights", "decoder.")), "")
    assert not any(p.requires_grad for p in models["unet"].parameters())


def test_converted_files_match_originals(release, tmp_path):
    written = convert_file(str(release / "mgldvsr_unet.ckpt"), str(tmp_path))
    names = {os.path.basename(p).split(".")[1] for p in written}
    assert {"unet", "lr_encoder", "first_stage", "text_encoder", "raft"} <= names
    original = load_component(release / "mgldvsr_unet.ckpt", "unet")
    converted = load_component(tmp_path / "mgldvsr_unet.unet.safetensors", "unet")
    assert converted.config == original.config  # head size carried by the JSON header, no YAML needed
    for (k, a), (_, b) in zip(original.state_dict().items(), converted.state_dict().items()):
        assert torch.equal(a, b), k
    raft = convert_file(str(release / "raft-things.pth"), str(tmp_path))
    assert load_component(raft[0], "raft").state_dict().keys() == load_component(release / "raft-things.pth", "raft").state_dict().keys()
    assert not list(tmp_path.glob("*.tmp"))


def test_converted_half_precision(release, tmp_path):
    (path,) = convert_file(str(release / "video_vae_cfw.ckpt"), str(tmp_path), torch.float16)
    assert next(iter(load_file(path).values())).dtype == torch.float16
    assert load_component(path, "video_vae", dtype=torch.float32).post_quant_conv.weight.dtype == torch.float32


def test_wrong_file_for_slot_names_file_and_content(release):
    with pytest.raises(CheckpointError) as err:
        load_component(release / "video_vae_cfw.ckpt", "unet")
    message = str(err.value)
    assert "video_vae_cfw.ckpt" in message and "video VAE" in message and "mgldvsr_unet.ckpt" in message
    with pytest.raises(CheckpointError, match="RAFT"):
        load_component(release / "raft-things.pth", "video_vae")


def test_converted_file_in_wrong_slot(release, tmp_path):
    (path,) = convert_file(str(release / "video_vae_cfw.ckpt"), str(tmp_path))
    with pytest.raises(CheckpointError, match="holds the temporal CFW video VAE"):
        load_component(path, "raft")


def test_truncated_file(release, tmp_path):
    data = (release / "video_vae_cfw.ckpt").read_bytes()
    bad = tmp_path / "video_vae_cfw.ckpt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        load_component(bad, "video_vae")
    assert str(bad) in str(err.value)
    half = tmp_path / "x.safetensors"
    half.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_component(half, "raft")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_component(empty, "raft")
    with pytest.raises(CheckpointError, match="not found"):
        load_component(tmp_path / "nope.ckpt", "raft")


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": Payload()}, path)
    with pytest.raises(CheckpointError, match="pickled objects other than tensors"):
        load_component(path, "raft")


def test_missing_unexpected_and_wrong_shape_keys_are_listed(release, tmp_path):
    sd = collections.OrderedDict(torch.load(release / "raft-things.pth", weights_only=True))
    sd.pop("module.fnet.conv1.weight")
    sd["module.fnet.extra.weight"] = torch.zeros(3)
    sd["module.update_block.flow_head.conv2.bias"] = torch.zeros(7)
    path = tmp_path / "raft-things.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as err:
        load_component(path, "raft")
    message = str(err.value)
    assert "missing key(s): module.fnet.conv1.weight" in message
    assert "unexpected key(s): module.fnet.extra.weight" in message
    assert "wrong shape" in message and "module.update_block.flow_head.conv2.bias" in message


def test_training_only_keys_are_ignored(release, tmp_path):
    ckpt = torch.load(release / "video_vae_cfw.ckpt", weights_only=True)
    ckpt["state_dict"]["loss.logvar"] = torch.zeros(())
    ckpt["state_dict"]["loss.discriminator.main.0.weight"] = torch.zeros(4, 3, 4, 4)
    path = tmp_path / "video_vae_cfw.ckpt"
    torch.save(ckpt, path)
    load_component(path, "video_vae")


def test_architecture_error_points_at_the_yaml_beside_the_checkpoint(release, tmp_path):
    """Without its YAML the tiny checkpoint's head width cannot be inferred: the error says what fixes it."""
    import shutil

    bare = tmp_path / "custom_unet.ckpt"
    shutil.copyfile(release / "mgldvsr_unet.ckpt", bare)
    with pytest.raises(CheckpointError, match=r"do not fit its architecture.*official-format YAML of this checkpoint "
                                              r"beside it as custom_unet\.yaml"):
        load_components(bare, ["unet"])
    shutil.copyfile(release / "mgldvsr_unet.yaml", tmp_path / "custom_unet.yaml")
    assert load_components(bare, ["unet"])["unet"] is not None  # the hint is right: the YAML fixes it
