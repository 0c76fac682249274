"""Run a ComfyUI workflow file of this pack without a ComfyUI server (the "main job" command).

UI-format workflows (what the frontend saves) are mapped to node inputs exactly as the frontend
does: widget values in input order, two values for seed-like widgets (value + "control after
generate"), one "upload" value after the required inputs of upload combos. Nodes run in
topological order with a ComfyUI-like cache: a node re-runs only when its widget values, its
upstream results or its ``IS_CHANGED`` value change. The ComfyUI core nodes the shipped workflows
use (Load Video, Save Video, ...) run through host-free stand-ins (``core_nodes.py``).
"""
from __future__ import annotations

import hashlib
import os
from typing import Any

import torch

from . import preflight
from ..nodes.validation import input_specs, is_widget
from .preflight import WorkflowError

CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}


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


def with_core_nodes(classes: dict) -> dict:
    """The pack's node classes plus the headless stand-ins of the ComfyUI core nodes the shipped workflows
    use (Load Video, Get Video Components, Create Video, Save Video, Preview Image; see core_nodes.py)."""
    from .core_nodes import CORE_NODES

    return {**CORE_NODES, **classes}


def to_api(workflow: dict, classes: dict) -> dict:
    """UI-format workflow -> ``{id: {"class_type", "inputs", "title"}}`` (API format passes through).

    The structure is checked first (:mod:`preflight`): a list, a missing link or a link from a node
    that does not run is a :class:`WorkflowError` naming the node and input, not a ``KeyError``.
    """
    preflight.check_document(workflow)
    if "nodes" not in workflow:
        return workflow
    classes = with_core_nodes(classes)
    preflight.check_ui_workflow(workflow, classes)
    links = preflight.ui_links(workflow)
    by_id = {node["id"]: node for node in workflow["nodes"]}
    resolved: dict = {}
    api = {}
    for node in workflow["nodes"]:
        kind = node["type"]
        if node.get("mode", 0) in preflight.SKIPPED_MODES or kind in preflight.NOTE_TYPES + ("Reroute",):
            continue
        if kind not in classes:
            raise WorkflowError(f"node {node['id']} is a '{kind}', which this runner does not know (it runs this pack's "
                                f"nodes and these ComfyUI core nodes: {', '.join(sorted(with_core_nodes({})))})")
        cls = classes[kind]
        inputs: dict[str, Any] = {}
        values = list(node.get("widgets_values") or [])
        layout = widget_layout(cls)
        required = {name for name, _, _, req in input_specs(cls) if req}
        needed = max((i + 1 for i, (name, _, _) in enumerate(layout) if name in required), default=0)
        if len(values) < needed:  # optional widgets come last: workflows saved before they existed lack them
            raise WorkflowError(f"node {node['id']} ({kind}) has {len(values)} widget values, expected {len(layout)} "
                                f"({', '.join(n for n, _, _ in layout if not n.startswith('<'))}); open and save the "
                                f"workflow in ComfyUI again")
        for (name, _, _), value in zip(layout, values):
            if not name.startswith("<"):
                inputs[name] = value
        for slot in node.get("inputs") or []:
            link = slot.get("link")
            if link is not None:
                source, source_slot = preflight.resolve_reroutes(links[link][0], links[link][1], by_id, links, resolved)
                inputs[slot["name"]] = [str(source), source_slot]
        api[str(node["id"])] = {"class_type": kind, "inputs": inputs, "title": node.get("title") or kind}
    if not api:
        raise WorkflowError("the workflow has no output node: every node is a note, muted or bypassed, so running it "
                            "would produce nothing; switch its nodes on (or add MGLD Save Video)")
    return api


def apply_overrides(api: dict, classes: dict, assignments: list[str]) -> None:
    """``NODE.WIDGET=VALUE`` where NODE is a node id, its title or its type (when unique)."""
    classes = with_core_nodes(classes)
    for assignment in assignments:
        target, equals, raw = assignment.partition("=")
        node_ref, dot, widget = target.rpartition(".")
        if not equals or not dot or not node_ref or not widget:
            raise WorkflowError(f"--set {assignment!r}: expected NODE.WIDGET=VALUE, e.g. --set MGLDSampler.steps=20 "
                                f"(NODE is a node id, title or type)")
        matches = [i for i, n in api.items() if node_ref in (i, preflight.title_of(n), n["class_type"])]
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
            try:
                return int(raw)
            except ValueError:
                number = float(raw)  # "20.0" is 20; "2.5", "nan" and "inf" are not whole numbers
                if not number.is_integer():
                    raise ValueError("expected a whole number") from None
                return int(number)
        if kind == "FLOAT":
            return float(raw)  # NaN and infinity pass here and are refused, with the range, by the value checks
        if kind == "BOOLEAN":
            if raw.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError("expected true or false")
            return raw.lower() in ("1", "true", "yes", "on")
        return raw
    except (ValueError, OverflowError) as exc:
        raise WorkflowError(f"--set {label}={raw!r}: {exc}") from None


def check(api: dict, classes: dict, *, streamed: bool | None = None, output_given: bool = False) -> None:
    """Everything that can be checked before the first node runs (see :mod:`preflight`); values are
    converted in place. ``streamed``: whether decoded frames go straight into the file (default: no
    separate decoder node is left in the graph)."""
    classes = with_core_nodes(classes)
    preflight.check_api_workflow(api, classes)
    topological_order(api)  # a cycle is refused now, not halfway through
    preflight.check_values(api, classes, output_given=output_given)
    if streamed is None:
        streamed = not any(n["class_type"] == "MGLDDecode" for n in api.values())
    preflight.check_media(api, classes, streamed=streamed)


class NodeFailed(Exception):
    """A node's function raised: ``error`` is what it raised, ``label`` names the node (``node 6 (...)``)."""

    def __init__(self, node_id: str, label: str, error: BaseException):
        self.node_id, self.label, self.error = node_id, label, error
        super().__init__(f"{label}: {error}")


class Runner:
    """Executes API-format graphs, caching node results between runs like ComfyUI does."""

    def __init__(self, classes: dict):
        self.classes = with_core_nodes(classes)
        self.cache: dict[str, tuple[Any, tuple]] = {}
        self.executed: list[str] = []
        #: Text each node executed in the last run shows on itself in ComfyUI (``ui.text``), by node id.
        self.texts: dict[str, str] = {}

    def run(self, api: dict) -> dict:
        """Run every node (results by node id). A node's exception comes out as :class:`NodeFailed`."""
        self.executed, self.texts = [], {}
        check(api, self.classes, output_given=any(n.get("output_path") for n in api.values()))
        order = topological_order(api)
        signatures, results = {}, {}
        for node_id in order:
            node = api[node_id]
            cls = self.classes[node["class_type"]]
            kwargs, parts = {}, [node["class_type"]]
            for name, value in sorted(node["inputs"].items()):
                if name == preflight.UPLOAD_WIDGET:
                    continue
                if isinstance(value, list) and len(value) == 2 and str(value[0]) in api:
                    kwargs[name] = results[str(value[0])][value[1]]
                    parts.append((name, signatures[str(value[0])], value[1]))
                else:
                    kwargs[name] = value
                    parts.append((name, repr(value)))
            if node.get("output_path"):  # the runner's --output: a keyword the saver takes outside ComfyUI
                kwargs["output_path"] = node["output_path"]
                parts.append(("output_path", node["output_path"]))
            if hasattr(cls, "IS_CHANGED"):
                parts.append(("changed", repr(cls.IS_CHANGED(**{k: v for k, v in kwargs.items()}))))
            # A digest, not the text: a node's text would hold its inputs' texts quoted, so in a long chain
            # (each repr escaping the one before) the signatures grew exponentially with its length.
            signature = hashlib.sha256(repr(parts).encode("utf-8", "surrogatepass")).hexdigest()
            cached = self.cache.get(node_id)
            if cached is not None and cached[1] == signature:
                results[node_id] = cached[0]
            else:
                try:
                    with torch.inference_mode():  # as ComfyUI executes nodes
                        output = getattr(cls(), cls.FUNCTION)(**kwargs)
                except Exception as exc:
                    raise NodeFailed(node_id, preflight.node_label(node_id, node), exc) from exc
                if isinstance(output, dict):
                    texts = (output.get("ui") or {}).get("text") or []
                    if texts:  # what ComfyUI shows on the node (figures, a table): the CLI prints it
                        self.texts[node_id] = "\n".join(str(t) for t in texts)
                    output = output.get("result", ())
                results[node_id] = tuple(output)
                self.cache[node_id] = (results[node_id], signature)
                self.executed.append(node_id)
            signatures[node_id] = signature
        return results


#: The node that replaces a Decode -> Save pair when the decoded frames go nowhere else (see :func:`stream_to_file`).
STREAMING_NODE = "MGLDDecodeAndSave"
#: A frame interpolation between the decoder and the saver is streamed too (the merged node's ``multiplier``).
INTERPOLATION_NODE = "MGLDInterpolateFrames"


def stream_to_file(api: dict, classes: dict) -> list[str]:
    """Run each MGLD decoder whose frames feed only one MGLD saver as the streaming decode-and-save node.

    The graph computes the same file, but the decoded clip is written frame by frame instead of being
    held whole as an IMAGE between two nodes, so RAM no longer grows with the clip length. The merged
    node keeps the saver's id and title (its result is the saved path, as before); the decoder's inputs
    come first, as the merged node declares them. An MGLD Interpolate Frames node between the two
    (its frames, fps and audio going only to that saver) is merged as well: the merged node then
    interpolates as it writes. Returns the ids of the savers that now stream.
    """
    if STREAMING_NODE not in classes:
        return []
    accepted = {name for name, *_ in input_specs(classes[STREAMING_NODE])}
    consumers: dict[str, list[tuple[str, str, int]]] = {}
    video_used = set()  # nodes whose outputs other than the first are linked
    for node_id, node in api.items():
        for name, value in node["inputs"].items():
            if _is_link(value, api):
                consumers.setdefault(str(value[0]), []).append((node_id, name, value[1]))
                if value[1] != 0:
                    video_used.add(str(value[0]))
    merged = []
    for decode_id in [i for i, n in api.items() if n["class_type"] == "MGLDDecode"]:
        users = consumers.get(decode_id, [])
        if len(users) != 1:
            continue
        save_id, socket, _ = users[0]
        inputs = dict(api[decode_id]["inputs"])
        interpolate_id = save_id if api[save_id]["class_type"] == INTERPOLATION_NODE and socket == "frames" else None
        if interpolate_id is not None:  # decoder -> interpolation -> saver
            through = _interpolation_to_saver(consumers, interpolate_id)
            if through is None:
                continue
            save_id, socket = through
        save = api[save_id]
        if save["class_type"] != "MGLDSaveVideo" or socket != "frames":
            continue
        if save_id in video_used:
            continue  # the saver's VIDEO output is used: the merged node (path only) cannot provide it
        inputs.update({k: v for k, v in save["inputs"].items() if k != "frames"})
        if interpolate_id is not None:  # its settings, and the fps (and audio) that went into it, not out
            interpolation = api[interpolate_id]["inputs"]
            inputs.update({k: v for k, v in interpolation.items() if k not in ("frames", "audio")})
            if save["inputs"].get("audio") == [interpolate_id, 2]:
                inputs.pop("audio")
                if "audio" in interpolation:
                    inputs["audio"] = interpolation["audio"]
        if not set(inputs) <= accepted:
            continue
        api[save_id] = {**save, "class_type": STREAMING_NODE, "inputs": inputs, "title": save.get("title", STREAMING_NODE)}
        del api[decode_id]
        if interpolate_id is not None:
            del api[interpolate_id]
        merged.append(save_id)
    return merged


def _interpolation_to_saver(consumers: dict, interpolate_id: str) -> tuple[str, str] | None:
    """``(saver id, socket)`` when the interpolation's frames go to one node only and its fps and audio, if used,
    to that node's fps and audio (so the merged node writes what the saver would have written); else None."""
    users = consumers.get(interpolate_id, [])
    frames = [(node_id, socket) for node_id, socket, slot in users if slot == 0]
    if len(frames) != 1:
        return None
    save_id = frames[0][0]
    expected = {(save_id, "frames", 0), (save_id, "fps", 1), (save_id, "audio", 2)}
    if not set(users) <= expected or (save_id, "fps", 1) not in users:
        return None
    return frames[0]


def _is_link(value, api: dict) -> bool:
    return isinstance(value, list) and len(value) == 2 and str(value[0]) in api


def topological_order(api: dict) -> list[str]:
    """Node ids, each after the nodes it takes inputs from (in id order where the graph leaves a choice).

    Depth first without recursion and with one state per node, so a chain of thousands of nodes takes
    time and memory linear in its length (the recursive walk hit Python's recursion limit, and the
    trail it carried was copied at every level). A cycle is refused, naming a node on it.
    """
    order, state = [], {}  # state: 1 = on the current path, 2 = done

    def upstream(node_id):
        for value in api[node_id]["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) in api:
                yield str(value[0])

    for root in sorted(api, key=lambda i: (0, int(i), "") if i.isdigit() else (1, 0, i)):
        if state.get(root) == 2:
            continue
        state[root] = 1
        stack = [(root, upstream(root))]
        while stack:
            node_id, pending = stack[-1]
            for source in pending:
                mark = state.get(source)
                if mark == 1:
                    raise WorkflowError(f"the workflow has a cycle through node {source}")
                if mark is None:
                    state[source] = 1
                    stack.append((source, upstream(source)))
                    break
            else:
                stack.pop()
                state[node_id] = 2
                order.append(node_id)
    return order


#: Node type -> the widget that names its input video (what ``--input`` replaces).
VIDEO_LOADERS = {"MGLDLoadVideo": "video", "LoadVideo": "file"}
#: Node types whose result is a written video file (what ``--output`` moves).
VIDEO_SAVERS = ("MGLDSaveVideo", STREAMING_NODE, "SaveVideo")


def set_input_video(api: dict, path: str) -> int:
    """Point every video loader of the graph at ``path``; returns how many there are."""
    loaders = [n for n in api.values() if n["class_type"] in VIDEO_LOADERS]
    for node in loaders:
        node["inputs"][VIDEO_LOADERS[node["class_type"]]] = path
    return len(loaders)


def saved_paths(api: dict, results: dict) -> list[str]:
    """The files the graph's savers wrote, in node order."""
    return [results[i][0] for i, n in api.items() if n["class_type"] in VIDEO_SAVERS and results.get(i)]


def missing_weights(api: dict) -> list[str]:
    """Model files named by loader widgets that are not in the model folder."""
    from ..nodes import host

    available = set(host.list_models())
    wanted = [v for n in api.values() for k, v in n["inputs"].items() if k in preflight.WEIGHT_WIDGETS]
    return [w for w in wanted if isinstance(w, str) and w not in available and not os.path.isfile(w)]


def load_workflow(path: str) -> dict:
    """A workflow file, read and parsed within the limits of :mod:`preflight` (size, then nesting, then
    the graph's size): a hostile file is refused with one line, never a traceback or gigabytes of memory."""
    try:
        size = os.stat(path).st_size
        if size > preflight.MAX_WORKFLOW_BYTES:  # said before the file is read into memory
            raise WorkflowError(f"{path} is {size / 2**20:.0f} MB: larger than the {preflight.MAX_WORKFLOW_BYTES // 2**20}"
                                f" MB a workflow may have (shipped workflows are a few kB); is it a workflow file?")
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, ValueError) as exc:
        if isinstance(exc, WorkflowError):
            raise
        raise WorkflowError(f"{path}: cannot read the workflow ({exc})") from None
    return preflight.parse_workflow(text, path)
