"""The ComfyUI node classes, shipped workflows and headless runner, without ComfyUI (as CI runs them).

The slow runs of the nodes end to end with the tiny release files are in tests/system/test_nodes_end_to_end.py."""
import json
import os
import sys

import pytest
import torch

import mgld_vsr
from golden_lib import REPO_ROOT
from mgld_vsr.runner import graph as headless

NODES = mgld_vsr.NODE_CLASS_MAPPINGS
WORKFLOWS = sorted((REPO_ROOT / "example_workflows").glob("*.json"))
sys.path.insert(0, str(REPO_ROOT / "workflows"))
from build_workflows import CORE_NODES  # noqa: E402


def test_every_node_is_documented():
    for name, cls in NODES.items():
        assert cls.DESCRIPTION and cls.CATEGORY.startswith("MGLD-VSR/"), name
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES), name
        for input_name, kind, options, _ in headless.input_specs(cls):
            assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"
    assert all(name.startswith("MGLD") for name in NODES)


def test_every_node_has_a_help_page():
    """ComfyUI's help panel asks WEB_DIRECTORY/docs/<NodeName>.md: one page per node naming every input and output."""
    docs = REPO_ROOT / mgld_vsr.WEB_DIRECTORY / "docs"
    assert sorted(p.stem for p in docs.glob("*.md")) == sorted(NODES)
    for name, cls in NODES.items():
        page = (docs / f"{name}.md").read_text()
        assert page.startswith(f"# {mgld_vsr.NODE_DISPLAY_NAME_MAPPINGS[name]}\n"), name
        assert "## When it fails" in page, name
        for input_name, *_ in headless.input_specs(cls):
            assert f"`{input_name}`" in page, f"{name}.md does not explain {input_name}"
        for output_name in cls.RETURN_NAMES:
            assert f"`{output_name}`" in page, f"{name}.md does not explain the output {output_name}"


def test_templates_come_from_example_workflows_only_with_thumbnails():
    """ComfyUI lists every *.json of these folders of a pack in its template browser: one copy only."""
    for folder in ("workflows", "workflow", "examples", "example"):
        assert not list((REPO_ROOT / folder).glob("*.json")), f"{folder}/ would list templates a second time"
    names = [p.stem for p in WORKFLOWS]
    assert names
    from PIL import Image

    for name in names:
        with Image.open(REPO_ROOT / "example_workflows" / f"{name}.jpg") as thumbnail:
            assert thumbnail.format == "JPEG" and min(thumbnail.size) >= 128, name


def test_grayscale_and_alpha_frames_are_accepted():
    from mgld_vsr.nodes.common import image_to_frames

    assert image_to_frames(torch.rand(2, 8, 8, 1)).shape == (2, 8, 8, 3)
    with pytest.warns(RuntimeWarning, match="alpha is dropped"):  # said, not silent
        assert image_to_frames(torch.rand(2, 8, 8, 4)).shape == (2, 8, 8, 3)
    with pytest.raises(ValueError, match="empty"):
        image_to_frames(torch.rand(0, 8, 8, 3))


def test_frames_from_an_image_are_not_copied_unless_they_need_clamping():
    """A long clip's IMAGE is large: an in-range float32 batch is used as it is; out-of-range values
    are clamped in a copy, leaving ComfyUI's cached IMAGE untouched."""
    from mgld_vsr.nodes.common import image_to_frames

    images = torch.rand(3, 8, 8, 3)
    assert image_to_frames(images).data_ptr() == images.data_ptr()
    loud = images * 2 - 0.5
    before = loud.clone()
    frames = image_to_frames(loud)
    assert frames.min() >= 0 and frames.max() <= 1 and torch.equal(loud, before)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_matches_node_definitions(path):
    data = json.loads(path.read_text())
    nodes = {n["id"]: n for n in data["nodes"]}
    output_types = {}
    for node in data["nodes"]:
        kind = node["type"]
        assert kind in NODES or kind in CORE_NODES, f"unknown node type {kind}"
        if kind in NODES:
            layout = headless.widget_layout(NODES[kind])
            values = node["widgets_values"]
            assert len(values) == len(layout), f"{kind}: {len(values)} widget values, expects {len(layout)}"
            for (name, widget_kind, options), value in zip(layout, values):
                if isinstance(widget_kind, (list, tuple)) and name not in ("ckpt_name", "vae_name", "raft_name", "video"):
                    assert value in widget_kind, f"{kind}.{name}={value!r} not in {widget_kind}"
                elif widget_kind in ("INT", "FLOAT"):
                    assert isinstance(value, (int, float)) and options.get("min", value) <= value <= options.get("max", value)
                elif widget_kind == "CONTROL":
                    assert value in headless.CONTROL_VALUES
            types = list(NODES[kind].RETURN_TYPES)
            inputs = {n: (k if isinstance(k, str) else "COMBO") for n, k, _, _ in headless.input_specs(NODES[kind])}
        else:
            assert len(node["widgets_values"]) == len(CORE_NODES[kind]["widgets"])
            types = [t for _, t in CORE_NODES[kind]["outputs"]]
            inputs = {n: t for n, t, _ in CORE_NODES[kind]["inputs"]}
        output_types[node["id"]] = types
        for slot in node["inputs"]:
            assert slot["name"] in inputs and slot["type"] == inputs[slot["name"]]
    for link_id, source, source_slot, target, target_slot, link_type in data["links"]:
        assert output_types[source][source_slot] == link_type
        assert nodes[target]["inputs"][target_slot]["type"] == link_type
        assert nodes[target]["inputs"][target_slot]["link"] == link_id
    for node in data["nodes"]:  # every required socket is connected
        if node["type"] in NODES:
            specs = headless.input_specs(NODES[node["type"]])
            connected = {s["name"] for s in node["inputs"] if s["link"] is not None}
            for name, kind, options, required in specs:
                if required and not headless.is_widget(kind, options):
                    assert name in connected, f"{node['type']}.{name} is not connected"


def test_runner_rejects_bad_overrides():
    api = headless.to_api(headless.load_workflow(str(REPO_ROOT / "example_workflows" / "mgld_vsr_basic.json")), NODES)
    with pytest.raises(headless.WorkflowError, match="no input 'strength'"):
        headless.apply_overrides(api, NODES, ["MGLDSampler.strength=3"])
    with pytest.raises(headless.WorkflowError, match="choose one of"):
        headless.apply_overrides(api, NODES, ["MGLDDecode.color_fix=vivid"])
    headless.apply_overrides(api, NODES, ["MGLDSampler.steps=5000"])
    with pytest.raises(headless.WorkflowError, match="outside"):
        headless.Runner(NODES).run(api)


def test_cancel_during_saving_leaves_no_file(tmp_path, monkeypatch):
    from mgld_vsr.nodes import host

    monkeypatch.setenv("MGLD_HOME", str(tmp_path))
    written = []

    def cancel_after_two(index=None):
        written.append(index)
        if len(written) == 2:
            raise KeyboardInterrupt("cancelled")

    monkeypatch.setattr(host, "check_interrupt", cancel_after_two)
    frames = torch.rand(6, 32, 32, 3)
    with pytest.raises(KeyboardInterrupt):
        NODES["MGLDSaveVideo"]().save(frames, 24.0, "MGLD/cancel", "h264", 19, "auto")
    folder = tmp_path / "output" / "MGLD"
    leftovers = os.listdir(folder) if folder.exists() else []
    assert leftovers == [], leftovers  # neither a half-written video nor its temporary file

def test_a_flow_node_saved_before_the_cut_widgets_loads_with_their_defaults():
    """Workflows saved before cut_detector and manual_cuts existed have two widget values on the flow node."""
    workflow = json.loads((REPO_ROOT / "example_workflows" / "mgld_vsr_basic.json").read_text())
    flow = next(n for n in workflow["nodes"] if n["type"] == "MGLDFlow")
    assert flow["widgets_values"][2:] == ["transnetv2", ""]  # the shipped workflow carries the new values
    flow["widgets_values"] = flow["widgets_values"][:2]  # scene_cut_threshold, devices: as saved before
    api = headless.to_api(workflow, NODES)
    inputs = api[str(flow["id"])]["inputs"]
    assert inputs["scene_cut_threshold"] == 0.5 and "cut_detector" not in inputs and "manual_cuts" not in inputs
    signature = NODES["MGLDFlow"]().compute.__defaults__
    assert signature[-2:] == ("transnetv2", "")  # what the node then uses: the new default detector, no edits
