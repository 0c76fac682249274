"""Run a ComfyUI workflow file of this pack without a ComfyUI server (the "main job" command).

UI-format workflows (what the frontend saves) are mapped to node inputs exactly as the frontend
does: widget values in input order, two values for seed-like widgets (value + "control after
generate"), one "upload" value after the required inputs of upload combos. Nodes run in
topological order with a ComfyUI-like cache: a node re-runs only when its widget values, its
upstream results or its ``IS_CHANGED`` value change.
"""
from __future__ import annotations

import json
import os
from typing import Any

import torch

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}


class WorkflowError(ValueError):
    pass


def input_specs(cls) -> list[tuple[str, Any, dict, bool]]:
    """``(name, type, options, required)`` of a node class, in declaration order."""
    spec = cls.INPUT_TYPES()
    out = []
    for section in ("required", "optional"):
        for name, value in spec.get(section, {}).items():
            kind = value[0]
            options = value[1] if len(value) > 1 and isinstance(value[1], dict) else {}
            out.append((name, kind, options, section == "required"))
    return out


def is_widget(kind, options) -> bool:
    return isinstance(kind, (list, tuple)) or (kind in WIDGET_TYPES and not options.get("forceInput"))


def widget_layout(cls) -> list[tuple[str, Any, dict]]:
    """Widget slots in the order the frontend serialises ``widgets_values`` (pseudo names in angle brackets)."""
    layout, upload, last_required = [], False, -1
    for name, kind, options, required in input_specs(cls):
        if not is_widget(kind, options):
            continue
        layout.append((name, kind, options))
        if options.get("control_after_generate") or name in ("seed", "noise_seed"):
            layout.append(("<control>", "CONTROL", {}))
        if required:
            last_required = len(layout) - 1
            upload |= isinstance(kind, (list, tuple)) and bool(options.get("video_upload") or options.get("image_upload"))
    if upload:  # the frontend adds its upload button as the last required input
        layout.insert(last_required + 1, ("<upload>", "UPLOAD", {}))
    return layout


def to_api(workflow: dict, classes: dict) -> dict:
    """UI-format workflow -> ``{id: {"class_type", "inputs", "title"}}`` (API format passes through)."""
    if "nodes" not in workflow:
        return workflow
    links = {link[0]: link for link in workflow.get("links", [])}
    api = {}
    for node in workflow["nodes"]:
        kind = node["type"]
        if node.get("mode", 0) in (2, 4) or kind in ("Note", "MarkdownNote", "Reroute"):
            continue
        if kind not in classes:
            raise WorkflowError(f"node {node['id']} is a '{kind}', which this runner does not know (only this pack's "
                                f"nodes run headless: {', '.join(sorted(classes))})")
        cls = classes[kind]
        inputs: dict[str, Any] = {}
        values = list(node.get("widgets_values") or [])
        layout = widget_layout(cls)
        required = {name for name, _, _, req in input_specs(cls) if req}
        needed = max((i + 1 for i, (name, _, _) in enumerate(layout) if name in required), default=0)
        if len(values) < needed:  # optional widgets come last: workflows saved before they existed lack them
            raise WorkflowError(f"node {node['id']} ({kind}) has {len(values)} widget values, expected {len(layout)}")
        for (name, _, _), value in zip(layout, values):
            if not name.startswith("<"):
                inputs[name] = value
        for slot in node.get("inputs", []):
            link = slot.get("link")
            if link is not None:
                _, source, source_slot, *_ = links[link]
                inputs[slot["name"]] = [str(source), source_slot]
        api[str(node["id"])] = {"class_type": kind, "inputs": inputs, "title": node.get("title") or kind}
    return api


def apply_overrides(api: dict, classes: dict, assignments: list[str]) -> None:
    """``NODE.WIDGET=VALUE`` where NODE is a node id, its title or its type (when unique)."""
    for assignment in assignments:
        target, _, raw = assignment.partition("=")
        node_ref, _, widget = target.rpartition(".")
        if not node_ref or not widget or not _:
            raise WorkflowError(f"--set expects NODE.WIDGET=VALUE, got {assignment!r}")
        matches = [i for i, n in api.items() if node_ref in (i, n["title"], n["class_type"])]
        if len(matches) != 1:
            raise WorkflowError(f"--set {assignment!r}: {'no' if not matches else 'several'} nodes match {node_ref!r}")
        node = api[matches[0]]
        specs = {name: (kind, options) for name, kind, options, _ in input_specs(classes[node["class_type"]])}
        if widget not in specs:
            raise WorkflowError(f"--set {assignment!r}: {node['class_type']} has no input {widget!r} "
                                f"(it has {', '.join(specs)})")
        kind, options = specs[widget]
        node["inputs"][widget] = parse_value(raw, kind, options, f"{node_ref}.{widget}")


def set_devices(api: dict, classes: dict, devices: str) -> None:
    """Give every node that has a ``devices`` setting this value (``--workers`` / ``--ray-address``)."""
    for node in api.values():
        if any(name == "devices" for name, *_ in input_specs(classes[node["class_type"]])):
            node["inputs"]["devices"] = devices


def parse_value(raw: str, kind, options: dict, label: str):
    try:
        if isinstance(kind, (list, tuple)):
            if raw not in kind and not options.get("video_upload"):
                raise ValueError(f"choose one of {list(kind)}")
            return raw
        if kind == "INT":
            return int(raw)
        if kind == "FLOAT":
            return float(raw)
        if kind == "BOOLEAN":
            return raw.lower() in ("1", "true", "yes", "on")
        return raw
    except ValueError as exc:
        raise WorkflowError(f"{label}={raw!r}: {exc}") from exc


def validate_value(node_id: str, cls, name: str, value):
    for spec_name, kind, options, _ in input_specs(cls):
        if spec_name != name or isinstance(value, list):
            continue
        if kind in ("INT", "FLOAT") and not isinstance(value, bool):
            low, high = options.get("min"), options.get("max")
            if (low is not None and value < low) or (high is not None and value > high):
                raise WorkflowError(f"node {node_id} ({cls.__name__}): {name}={value} is outside [{low}, {high}]")


def validate_node(node_id: str, cls, inputs: dict, api: dict) -> None:
    """The node's own ``VALIDATE_INPUTS`` on its widget values, as ComfyUI calls it before running a graph."""
    check = getattr(cls, "VALIDATE_INPUTS", None)
    if check is None:
        return
    import inspect

    names = [n for n in inspect.signature(check).parameters if n in inputs and not _is_link(inputs[n], api)]
    verdict = check(**{n: inputs[n] for n in names})
    if verdict is not True:
        raise WorkflowError(f"node {node_id} ({cls.__name__}): {verdict}")


class Runner:
    """Executes API-format graphs, caching node results between runs like ComfyUI does."""

    def __init__(self, classes: dict):
        self.classes = classes
        self.cache: dict[str, tuple[Any, tuple]] = {}
        self.executed: list[str] = []

    def run(self, api: dict) -> dict:
        self.executed = []
        order = topological_order(api)
        for node_id in order:  # every value checked before any work starts
            node = api[node_id]
            for name, value in node["inputs"].items():
                if not (isinstance(value, list) and len(value) == 2 and str(value[0]) in api):
                    validate_value(node_id, self.classes[node["class_type"]], name, value)
            validate_node(node_id, self.classes[node["class_type"]], node["inputs"], api)
        signatures, results = {}, {}
        for node_id in order:
            node = api[node_id]
            cls = self.classes[node["class_type"]]
            kwargs, parts = {}, [node["class_type"]]
            for name, value in sorted(node["inputs"].items()):
                if isinstance(value, list) and len(value) == 2 and str(value[0]) in api:
                    kwargs[name] = results[str(value[0])][value[1]]
                    parts.append((name, signatures[str(value[0])], value[1]))
                else:
                    kwargs[name] = value
                    parts.append((name, repr(value)))
            if hasattr(cls, "IS_CHANGED"):
                parts.append(("changed", repr(cls.IS_CHANGED(**{k: v for k, v in kwargs.items()}))))
            signature = repr(parts)
            cached = self.cache.get(node_id)
            if cached is not None and cached[1] == signature:
                results[node_id] = cached[0]
            else:
                with torch.inference_mode():  # as ComfyUI executes nodes
                    output = getattr(cls(), cls.FUNCTION)(**kwargs)
                if isinstance(output, dict):
                    output = output.get("result", ())
                results[node_id] = tuple(output)
                self.cache[node_id] = (results[node_id], signature)
                self.executed.append(node_id)
            signatures[node_id] = signature
        return results


#: The node that replaces a Decode -> Save pair when the decoded frames go nowhere else (see :func:`stream_to_file`).
STREAMING_NODE = "MGLDDecodeAndSave"


def stream_to_file(api: dict, classes: dict) -> list[str]:
    """Run each MGLD decoder whose frames feed only one MGLD saver as the streaming decode-and-save node.

    The graph computes the same file, but the decoded clip is written frame by frame instead of being
    held whole as an IMAGE between two nodes, so RAM no longer grows with the clip length. The merged
    node keeps the saver's id and title (its result is the saved path, as before); the decoder's inputs
    come first, as the merged node declares them. Returns the ids of the savers that now stream.
    """
    if STREAMING_NODE not in classes:
        return []
    accepted = {name for name, *_ in input_specs(classes[STREAMING_NODE])}
    consumers: dict[str, list[tuple[str, str]]] = {}
    for node_id, node in api.items():
        for name, value in node["inputs"].items():
            if _is_link(value, api):
                consumers.setdefault(str(value[0]), []).append((node_id, name))
    merged = []
    for decode_id in [i for i, n in api.items() if n["class_type"] == "MGLDDecode"]:
        users = consumers.get(decode_id, [])
        if len(users) != 1:
            continue
        save_id, socket = users[0]
        save = api[save_id]
        if save["class_type"] != "MGLDSaveVideo" or socket != "frames":
            continue
        inputs = dict(api[decode_id]["inputs"])
        inputs.update({k: v for k, v in save["inputs"].items() if k != "frames"})
        if not set(inputs) <= accepted:
            continue
        api[save_id] = {"class_type": STREAMING_NODE, "inputs": inputs, "title": save.get("title", STREAMING_NODE)}
        del api[decode_id]
        merged.append(save_id)
    return merged


def _is_link(value, api: dict) -> bool:
    return isinstance(value, list) and len(value) == 2 and str(value[0]) in api


def topological_order(api: dict) -> list[str]:
    order, state = [], {}

    def visit(node_id, trail=()):
        if state.get(node_id) == "done":
            return
        if node_id in trail:
            raise WorkflowError(f"the workflow has a cycle through node {node_id}")
        for value in api[node_id]["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) in api:
                visit(str(value[0]), trail + (node_id,))
        state[node_id] = "done"
        order.append(node_id)

    for node_id in sorted(api, key=lambda i: int(i) if i.isdigit() else i):
        visit(node_id)
    return order


def missing_weights(api: dict) -> list[str]:
    """Model files named by loader widgets that are not in the model folder."""
    from . import host

    available = set(host.list_models())
    wanted = [v for n in api.values() for k, v in n["inputs"].items() if k in ("ckpt_name", "vae_name", "raft_name")]
    return [w for w in wanted if isinstance(w, str) and w not in available and not os.path.isfile(w)]


def load_workflow(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise WorkflowError(f"{path}: cannot read the workflow ({exc})") from exc
