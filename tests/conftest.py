import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import pack_import  # noqa: E402,F401  (registers the package "mgld_vsr")
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def golden_dir() -> pathlib.Path:
    from golden_lib import default_golden_dir
    from needs import need_file

    golden = default_golden_dir()
    need_file(golden / "weights", "golden fixture set")
    return golden


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory, golden_dir):
    """The fixture set's tiny networks as the three official files (``make_release.py``), with the
    official-format YAML the tiny UNet needs beside its checkpoint (its head width is not the default)."""
    import subprocess

    from needs import need_file

    need_file(golden_dir.parent / "make_release.py", "the reference set's make_release.py")
    folder = tmp_path_factory.mktemp("mgld")
    subprocess.run([sys.executable, str(golden_dir.parent / "make_release.py"), str(folder), "--golden-dir", str(golden_dir)],
                   check=True, stdout=subprocess.DEVNULL)
    (folder / "mgldvsr_unet.yaml").write_text((golden_dir / "weights" / "tiny_mgldvsr.yaml").read_text())
    return folder


@pytest.fixture(scope="session")
def tiny_models(golden_dir):
    """The fixture set's tiny official-format networks, loaded through the real loader."""
    import torch

    from weights_index import weights_file_with_prefix
    from mgld_vsr.models.loader import load_component, load_components

    weights = golden_dir / "weights"
    models = load_components(weights_file_with_prefix(weights, "model.diffusion_model."), ["unet", "lr_encoder", "first_stage"])
    models["video_vae"] = load_component(weights_file_with_prefix(weights, "decoder."), "video_vae")
    models["raft"] = load_component(weights_file_with_prefix(weights, "module."), "raft")
    context_dim = models["unet"].config.context_dim
    models["context"] = torch.randn(1, 77, context_dim, generator=torch.Generator().manual_seed(7))
    return models


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one intra-op thread (tiny tensors lose time to thread start-up)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: Tiers whose tests run on one intra-op thread: their networks are tiny, and torch's thread pool costs more than
#: it saves there (the default mode's determinism test: 15 s on one thread, 16 s on two of a quiet 2-core
#: machine, 29 s on two of a busy one, whose spinning threads also burn twice the CPU time).
ONE_THREAD_TIERS = ("unit", "integration")


@pytest.fixture(scope="module", autouse=True)
def _tier_threads(request):
    """``one_thread`` for every module of the unit and integration tiers (the system tier keeps torch's default)."""
    if pathlib.Path(str(request.path)).parent.name in ONE_THREAD_TIERS:
        request.getfixturevalue("one_thread")
    yield


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_release):
    """The tiny release files (``tiny_release``) as the weights folder of the module's runs; outputs go to a
    fresh home folder."""
    import os

    folder = tiny_release
    old = {k: os.environ.get(k) for k in ("MGLD_MODELS_DIR", "MGLD_HOME")}
    os.environ["MGLD_MODELS_DIR"] = str(folder)
    os.environ["MGLD_HOME"] = str(tmp_path_factory.mktemp("home"))
    yield folder
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster of 2 CPUs for the whole session (Ray takes seconds to start): room for 2 CPU workers."""
    import ray

    from mgld_vsr.pipeline.workers.ray_executor import connect

    connect(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A test clip: 4 frames 32x32 of a sliding texture at 24000/1001 fps with a 1 kHz tone."""
    import math
    from fractions import Fraction

    import torch

    from mgld_vsr.pipeline import video_io

    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 12, generator=g), size=(32, 44), mode="bicubic").clamp(0, 1)
    frames = torch.stack([base[0, :, :, 2 * i:2 * i + 32].permute(1, 2, 0) for i in range(4)])
    t = torch.arange(48000) / 48000
    audio = video_io.AudioTrack((0.5 * torch.sin(2 * math.pi * 1000 * t))[None], 48000)
    path = tmp_path_factory.mktemp("clip") / "lr.mkv"
    video_io.write_video(path, (frames * 255).to(torch.uint8), Fraction(24000, 1001), audio=audio, codec="ffv1")
    return path
