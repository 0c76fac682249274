"""One clip over several Ray workers: the same output as one process, lost workers, resume, Ray absent.

All of it runs on CPU with the fixture set's tiny networks, against one local Ray cluster of two
worker processes shared by the session (``ray_cluster`` in conftest.py: Ray takes seconds to start).
"""
import logging
import os
import signal
import subprocess
import sys

import pytest
import torch

import mgld_vsr
from golden_lib import REPO_ROOT
from mgld_vsr.runner import graph as headless
from mgld_vsr.pipeline.sampling import checkpoint as checkpoint_module
from mgld_vsr.pipeline.workers.executor import LOCAL, parse_devices
from mgld_vsr.pipeline.frames import LRPlan
from mgld_vsr.pipeline.hooks import Hooks, Interrupted
from mgld_vsr.pipeline.motion.field import MotionField
from mgld_vsr.pipeline.sampling.loop import SamplingOptions, sample_video

NODES = mgld_vsr.NODE_CLASS_MAPPINGS
BASIC = REPO_ROOT / "example_workflows" / "mgld_vsr_basic.json"
STEPS = 2


def _basic_api(clip_path, devices=None):
    """The shipped basic workflow on the test clip, 2 steps, decoder and saver as separate nodes."""
    api = headless.to_api(headless.load_workflow(str(BASIC)), NODES)
    next(n for n in api.values() if n["class_type"] == "MGLDLoadVideo")["inputs"]["video"] = str(clip_path)
    headless.apply_overrides(api, NODES, [f"MGLDSampler.steps={STEPS}"])
    if devices is not None:
        headless.set_devices(api, NODES, devices)
    return api


def _outputs(api, results):
    """Flow, sampled latents and decoded frames of a basic-workflow run."""
    by_type = {n["class_type"]: results[i] for i, n in api.items()}
    return by_type["MGLDFlow"][0], by_type["MGLDSampler"][0].latents, by_type["MGLDDecode"][0]  # MGLD_LATENT


@pytest.fixture(scope="module")
def single_process(models_dir, clip):
    api = _basic_api(clip)
    return _outputs(api, headless.Runner(NODES).run(api))


def _assert_same(ours, reference):
    flow, latents, frames = ours
    ref_flow, ref_latents, ref_frames = reference
    assert torch.equal(flow.flows_forward, ref_flow.flows_forward)
    assert torch.equal(flow.flows_backward, ref_flow.flows_backward)
    assert torch.equal(flow.tail_forward, ref_flow.tail_forward)
    assert torch.equal(latents, ref_latents)
    assert torch.equal(frames, ref_frames)


def test_basic_workflow_on_two_workers_gives_the_single_process_frames(ray_cluster, single_process, clip):
    from mgld_vsr.pipeline.workers.executor import executor_for

    api = _basic_api(clip, devices="2")
    results = headless.Runner(NODES).run(api)
    _assert_same(_outputs(api, results), single_process)
    executor = executor_for("2")
    assert executor.workers == 2 and len(set(executor.worker_pids())) == 2  # two processes really did the work


def _sampling_case():
    """7 small frames: two temporal windows per step, so both workers hold units at once."""
    frames = (torch.rand(7, 16, 24, 3, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8)
    plan = LRPlan.create(16, 24, 4, min_short_side=64)
    return frames, plan, MotionField.still(7, plan.latent_size)


def _sample(tiny_models, executor, hooks=None, unet=None):
    frames, plan, motion = _sampling_case()
    networks = {k: tiny_models[k] for k in ("unet", "lr_encoder", "first_stage")}
    networks["unet"] = unet or networks["unet"]
    with torch.inference_mode():
        return sample_video(frames, motion, plan, **networks, context=tiny_models["context"],
                            options=SamplingOptions(steps=STEPS, tile=8), hooks=hooks, executor=executor).latents


@pytest.fixture(scope="module")
def sampled_here(tiny_models):
    """The small clip sampled in this process: what every executor must reproduce."""
    return _sample(tiny_models, LOCAL)


class DiesInSecondStep(torch.nn.Module):
    """The tiny UNet, except that the first worker process to reach the second denoising step is killed
    (SIGKILL, as a crash or a lost machine would end it) in the middle of a window. ``marker`` makes it
    happen once: the restarted worker and the others compute normally."""

    def __init__(self, unet, marker: str):
        super().__init__()
        self.unet, self.marker = unet, marker

    def _first_to_arrive(self) -> bool:
        """Creating the marker is atomic (O_EXCL): both workers reach the second step at about the same time,
        and a check-then-create let both of them die (CI saw two restarted workers)."""
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def forward(self, x, t, *args, **kwargs):
        if int(t.max()) < 900 and self._first_to_arrive():  # 2 steps: t = 999, then 499
            os.kill(os.getpid(), signal.SIGKILL)
        return self.unet(x, t, *args, **kwargs)


def test_a_worker_killed_during_sampling_loses_nothing(ray_cluster, tiny_models, sampled_here, tmp_path):
    from mgld_vsr.pipeline.workers.executor import executor_for

    ray_cluster.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers get DiesInSecondStep by value
    executor = executor_for("2")
    pids, reruns = executor.worker_pids(), executor.reruns
    seen = []
    marker = tmp_path / "killed"
    latents = _sample(tiny_models, executor, Hooks(progress=lambda *report: seen.append(report)),
                      unet=DiesInSecondStep(tiny_models["unet"], str(marker)))
    assert marker.exists()  # a worker really died mid-unit
    assert torch.equal(latents, sampled_here)
    assert executor.reruns > reruns  # its unit was computed again
    assert len(set(executor.worker_pids()) - set(pids)) == 1  # and Ray restarted it
    sampling = [done for done, total, what in seen if what == "sampling"]
    assert sampling == list(range(0, seen[-1][1] + 1))  # announced at 0, then every unit counted once, in order


def test_interrupting_stops_the_workers_and_the_next_run_is_unaffected(ray_cluster, tiny_models, sampled_here):
    from mgld_vsr.pipeline.workers.executor import executor_for

    executor = executor_for("2")
    calls = []

    def check_interrupt():
        calls.append(1)
        if len(calls) == 2:
            raise Interrupted("cancelled")

    with pytest.raises(Interrupted):
        _sample(tiny_models, executor, Hooks(check_interrupt=check_interrupt))
    assert len(calls) == 2  # stopped at the second unit, not at the end of the run
    assert torch.equal(_sample(tiny_models, executor), sampled_here)  # nothing stale left behind


KILL_AFTER_FIRST_CHECKPOINT = """
import os, signal, sys
sys.path.insert(0, {root!r})
from run_workflow import load_pack
load_pack()
from mgld_vsr.pipeline.sampling import checkpoint
save = checkpoint.SamplingCheckpoint.save
def save_then_die(self, *args, **kwargs):
    save(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # the coordinator dies right after its first checkpoint
checkpoint.SamplingCheckpoint.save = save_then_die
import run_workflow
sys.exit(run_workflow.main(sys.argv[1:]))
"""


def test_resume_after_the_coordinator_was_killed_gives_the_same_output(ray_cluster, single_process, models_dir, clip,
                                                                      tmp_path, monkeypatch, caplog):
    resume = tmp_path / "resume"
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_CHECKPOINT.format(root=str(REPO_ROOT)), str(BASIC),
                             "--input", str(clip), "--models", str(models_dir), "--set", f"MGLDSampler.steps={STEPS}",
                             "--resume", str(resume), "--checkpoint-every", "1"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert [p.name for p in resume.iterdir() if p.name.endswith(".pt")] and \
        not [p.name for p in resume.iterdir() if ".partial" in p.name]  # one whole checkpoint, no half-written one
    # Resumed here, on the Ray workers: the checkpoint does not depend on where units ran.
    monkeypatch.setenv("MGLD_RESUME_DIR", str(resume))
    monkeypatch.setenv("MGLD_CHECKPOINT_EVERY", "1")
    api = _basic_api(clip, devices="2")
    with caplog.at_level(logging.WARNING, logger="MGLD-VSR"):
        results = headless.Runner(NODES).run(api)
    assert f"1 denoising step(s) already done" in caplog.text  # it did resume: only step 2 was computed here
    _assert_same(_outputs(api, results), single_process)


def test_checkpoints_are_atomic_and_belong_to_their_inputs(tmp_path):
    store = checkpoint_module.SamplingCheckpoint(str(tmp_path), every=2)
    frames, plan, motion = _sampling_case()
    key = store.run_key(frames, motion.cuts, plan, SamplingOptions(steps=4))
    assert key != store.run_key(frames, motion.cuts, plan, SamplingOptions(steps=4, seed=1))
    other = frames.clone()
    other[0, 0, 0, 0] ^= 1
    assert key != store.run_key(other, motion.cuts, plan, SamplingOptions(steps=4))
    generator = torch.Generator().manual_seed(5)
    x, lr = torch.randn(7, 4, 8, 8, generator=generator), torch.randn(7, 4, 8, 8, generator=generator)
    store.save(key, 2, x, lr, generator.get_state())
    (tmp_path / f"sampling-{key}.pt.999.partial").write_bytes(b"half a file")  # a save killed midway
    state = store.load(key)
    assert state.step == 2 and torch.equal(state.x, x) and torch.equal(state.lr_latent, lr)
    assert torch.equal(torch.randn(3, generator=torch.Generator().set_state(state.generator_state)),
                       torch.randn(3, generator=generator))
    assert [store.due(s, 5) for s in range(5)] == [False, True, False, True, True]
    assert store.load(store.run_key(other, motion.cuts, plan, SamplingOptions(steps=4))) is None


@pytest.mark.parametrize("text, expected", [
    ("local", None), ("", None), ("auto", (None, None, ())), ("3", (3, None, ())), ("cpu:2", (2, False, ())),
    ("cuda:0, cuda:2", (2, True, (0, 2))),
])
def test_devices_settings(text, expected):
    request = parse_devices(text)
    assert (request if request is None else (request.workers, request.gpus, request.gpu_ids)) == expected


@pytest.mark.parametrize("text", ["gpu", "cuda:0,cuda:0", "cpu:0", "0", "cuda:x"])
def test_bad_devices_settings_name_the_value_and_the_fix(text):
    with pytest.raises(ValueError, match=f"devices='{text}'.*(use 'local'|list each GPU once)"):
        parse_devices(text)


def test_without_ray_a_devices_setting_stops_before_any_work(monkeypatch, clip):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    for node in ("MGLDFlow", "MGLDSampler", "MGLDDecode", "MGLDDecodeAndSave"):
        verdict = NODES[node].VALIDATE_INPUTS(devices="cuda:0,cuda:1")
        assert isinstance(verdict, str) and "\n" not in verdict
        assert "devices = 'cuda:0,cuda:1'" in verdict and "pip install -r requirements-distributed.txt" in verdict
        assert NODES[node].VALIDATE_INPUTS(devices="local") is True
    api = _basic_api(clip, devices="auto")
    runner = headless.Runner(NODES)
    with pytest.raises(headless.WorkflowError, match="devices = 'auto': spreads the work .* with Ray, which is not installed"):
        runner.run(api)
    assert runner.executed == []  # nothing ran: not even the loaders


def test_the_pack_imports_and_runs_without_ray(tmp_path):
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from run_workflow import load_pack; load_pack(); "
              "assert 'ray' not in sys.modules, 'importing the pack imported Ray'; "
              "sys.modules['ray'] = None; import run_workflow; sys.exit(run_workflow.main([sys.argv[2], '--workers', '2']))")
    out = subprocess.run([sys.executable, "-c", script, str(REPO_ROOT), str(BASIC)], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip().splitlines()[-1] == ("error: --workers spreads the run over Ray workers, but Ray is not "
                                                   "installed: pip install -r requirements-distributed.txt, or run "
                                                   "without --workers")
