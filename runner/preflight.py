"""Whole-workflow checks of the headless runner, all before the first loader runs.

A workflow file can be broken in ways ComfyUI's editor never produces (hand edits, scripts, files
cut short), and a bad value or combination found by a node's function is found after the models,
the flow and possibly hours of sampling. So the runner checks, in seconds, in this order:

1. structure (:func:`check_ui_workflow`, :func:`check_api_workflow`): an object, known node types,
   links that exist, come from nodes that run and carry the type the input takes, every required
   input connected or given, an output node to run for;
2. every node's values and combinations (``nodes/validation.py``, the rules ComfyUI applies
   through ``VALIDATE_INPUTS``);
3. what needs the input file (:func:`check_media`): the LR video exists and decodes (header only),
   the frame range, the latent tile against the latent grid, the output width for h265, and the
   memory the clip needs against the machine (``pipeline/memory/footprint.py``).

Every failure is a :class:`WorkflowError` whose text is one line naming the node, the input, the
value, the cause and the fix.
"""
from __future__ import annotations

import itertools
import json
import re
from typing import Any, Optional

#: UI nodes that never run: notes, and nodes switched off (mode 2 = muted, 4 = bypassed).
NOTE_TYPES = ("Note", "MarkdownNote")
SKIPPED_MODES = {2: "muted", 4: "bypassed"}
#: The nodes whose output is a file (ComfyUI runs a prompt for its output nodes).
SAVERS = ("MGLDSaveVideo", "MGLDDecodeAndSave")
#: The loader widgets that name a weight file: a file that is not there is reported with the others it
#: lacks (exit 2, where to put the official weights), not as a choice that is not in the list.
WEIGHT_WIDGETS = ("ckpt_name", "vae_name", "raft_name")
#: The upload button's value, which ComfyUI's API export writes among a loader's inputs (and ComfyUI ignores).
UPLOAD_WIDGET = "upload"

# Limits on a workflow file. Workflows are shared, so the runner reads files written by strangers: reading
# and checking one must take bounded time and memory whatever its size and shape. The shipped workflows
# have under 20 nodes, 30 links, a nesting depth of 6 and 20 kB; these limits are far above any real
# workflow (docs/headless.md#limits), and what is beyond them is refused with one line naming the limit.
#: Largest workflow file read, in bytes (JSON parsing holds several times this in memory).
MAX_WORKFLOW_BYTES = 32 * 2**20
#: Deepest nesting of JSON arrays and objects (Python's json module recurses once per level).
MAX_NESTING = 100
#: Most nodes in a workflow (UI nodes, notes included, or API-format nodes).
MAX_NODES = 10_000
#: Most links in a workflow (UI links, or API-format inputs that are links).
MAX_LINKS = 100_000


class WorkflowError(ValueError):
    """The workflow cannot run as given; the message says where and what to change."""


def title_of(node: dict):
    """A node's title: ``title`` (UI format, as the runner converts it) or ``_meta.title`` (ComfyUI's API export)."""
    meta = node.get("_meta")
    return node.get("title") or (meta.get("title") if isinstance(meta, dict) else None)


def node_label(node_id: Any, node: dict) -> str:
    """``node 6 (MGLD Sampler (motion-guided))``: how messages name a node."""
    from .. import NODE_DISPLAY_NAME_MAPPINGS

    kind = node.get("class_type") or node.get("type") or "?"
    title = title_of(node)
    if not title or title == kind:
        title = NODE_DISPLAY_NAME_MAPPINGS.get(kind, kind)
    return f"node {node_id} ({title})"


def is_link(value: Any, api: dict) -> bool:
    return isinstance(value, list) and len(value) == 2 and str(value[0]) in api


# --------------------------------------------------------------------------------------------------
# 1. Structure


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_BRACKETS = re.compile(r"[\[\]{}]")


def parse_workflow(text: str, path: str = "the workflow") -> dict:
    """A workflow file's text as a checked document, in time and memory linear in its size.

    Refused before parsing: a file over :data:`MAX_WORKFLOW_BYTES` and nesting deeper than
    :data:`MAX_NESTING` (Python's json module recurses once per level, so a file nested a few thousand
    levels deep would end in a RecursionError). The depth is counted on the text with its strings
    blanked out, by two linear regular-expression passes. Refused after parsing: a key given twice in
    one object (json keeps the last silently; at the top of an API-format file that is two nodes
    sharing one id, and one of them would be dropped).
    """
    if len(text) > MAX_WORKFLOW_BYTES:
        raise WorkflowError(f"{path} is {len(text) / 2**20:.0f} MB: larger than the {MAX_WORKFLOW_BYTES // 2**20} MB "
                            f"a workflow may have (shipped workflows are a few kB); is it a workflow file?")
    bare = _JSON_STRING.sub('""', text)
    steps = (1 if b in "[{" else -1 for b in _JSON_BRACKETS.findall(bare))
    depth = max(itertools.accumulate(steps), default=0)
    if depth > MAX_NESTING:
        raise WorkflowError(f"{path} nests arrays and objects more than {MAX_NESTING} levels deep (the limit; "
                            f"workflows saved by ComfyUI nest 6): it is not a workflow ComfyUI wrote")
    repeated: list = []

    def no_repeats(pairs):
        result = dict(pairs)
        if len(result) != len(pairs):
            seen = set()
            key = next(k for k, _ in pairs if k in seen or seen.add(k))
            repeated.append((key, result))
        return result

    try:
        document = json.loads(text, object_pairs_hook=no_repeats)
    except (ValueError, RecursionError) as exc:
        raise WorkflowError(f"{path}: cannot read the workflow ({exc})") from None
    for key, where in repeated:
        if where is document and "nodes" not in document:
            raise WorkflowError(f"{path}: two nodes share the id {key} (the file was edited or merged by hand); "
                                f"give each node its own id")
        raise WorkflowError(f"{path}: an object has the key {key!r} twice, so one of its values would be lost; "
                            f"the file was edited by hand: keep one")
    return check_document(document, path)


def check_document(document: Any, path: str = "the workflow") -> dict:
    """The top level: a JSON object, UI format (``nodes``/``links``) or API format (``{id: node}``)."""
    if isinstance(document, list):
        raise WorkflowError(f"{path} holds a JSON list, not a workflow: save it from ComfyUI with Workflow > Save "
                            f"(or Export (API)), which writes an object")
    if not isinstance(document, dict):
        raise WorkflowError(f"{path} holds a JSON {type(document).__name__}, not a workflow object")
    if not document:
        raise WorkflowError(f"{path} is empty ({{}}): it has no nodes to run; use a workflow such as "
                            f"example_workflows/mgld_vsr_basic.json")
    return document


def ui_links(workflow: dict) -> dict:
    """UI links by id as ``(origin id, origin slot, target id, target slot)``; both saved layouts."""
    raw = workflow.get("links") or []
    if not isinstance(raw, list):
        raise WorkflowError(f"the workflow's 'links' is a {type(raw).__name__}, not a list")
    if len(raw) > MAX_LINKS:
        raise WorkflowError(f"the workflow has {len(raw)} links, more than the {MAX_LINKS} a workflow may have")
    links = {}
    for entry in raw:
        if isinstance(entry, dict):  # newer frontends: {"id", "origin_id", "origin_slot", "target_id", ...}
            entry = [entry.get(k) for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot")]
        if not isinstance(entry, list) or len(entry) < 5 or not all(isinstance(x, (int, str)) for x in entry[:5]):
            raise WorkflowError(f"the workflow has a malformed link {entry!r}: expected [id, from node, from slot, "
                                f"to node, to slot, type]")
        if entry[0] in links:
            raise WorkflowError(f"the workflow has two links with the id {entry[0]} (the file was edited or merged by "
                                f"hand), so an input could take the wrong one; reconnect it in ComfyUI and save again")
        links[entry[0]] = (entry[1], entry[2], entry[3], entry[4])
    return links


def check_ui_workflow(workflow: dict, classes: dict) -> None:
    """A UI-format workflow: nodes are objects of known types, every link used exists and comes from a node that runs."""
    nodes = workflow.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise WorkflowError("the workflow has no nodes" if nodes in (None, []) else
                            f"the workflow's 'nodes' is a {type(nodes).__name__}, not a list of nodes")
    if len(nodes) > MAX_NODES:
        raise WorkflowError(f"the workflow has {len(nodes)} nodes, more than the {MAX_NODES} a workflow may have")
    by_id = {}
    for node in nodes:
        if not isinstance(node, dict) or "id" not in node or not isinstance(node.get("type"), str):
            raise WorkflowError(f"the workflow has a malformed node {str(node)[:80]}: expected an object with 'id' and 'type'")
        if not isinstance(node["id"], (int, str)) or isinstance(node["id"], bool):
            raise WorkflowError(f"the workflow has a node whose id is {node['id']!r}: expected a number")
        if node["id"] in by_id:
            other = by_id[node["id"]]
            raise WorkflowError(f"two nodes share the id {node['id']} ({other.get('title') or other['type']} and "
                                f"{node.get('title') or node['type']}), so one of them would be dropped; the file was "
                                f"edited or merged by hand: give each node its own id")
        by_id[node["id"]] = node
    links = ui_links(workflow)
    resolved: dict = {}
    for node in nodes:
        if node.get("mode", 0) in SKIPPED_MODES or node["type"] in NOTE_TYPES + ("Reroute",):
            continue
        label = f"node {node['id']} ({node.get('title') or node['type']})"
        values = node.get("widgets_values")
        if values is not None and not isinstance(values, list):
            raise WorkflowError(f"{label}: widgets_values is a {type(values).__name__}, not a list of values")
        for slot in node.get("inputs") or []:
            if not isinstance(slot, dict):
                raise WorkflowError(f"{label}: malformed input slot {slot!r}")
            link = slot.get("link")
            if link is None:
                continue
            if link not in links:
                raise WorkflowError(f"{label}: input '{slot.get('name')}' uses link {link}, which the workflow does not "
                                    f"have (the file was edited or cut short); reconnect the input in ComfyUI and save again")
            source, _ = resolve_reroutes(links[link][0], links[link][1], by_id, links, resolved)
            origin = by_id.get(source)
            if origin is None:
                raise WorkflowError(f"{label}: input '{slot.get('name')}' is linked to node {source}, which is not in the "
                                    f"workflow; reconnect the input in ComfyUI and save again")
            mode = SKIPPED_MODES.get(origin.get("mode", 0))
            if mode:
                raise WorkflowError(f"{label}: input '{slot.get('name')}' comes from node {source} "
                                    f"({origin.get('title') or origin['type']}), which is {mode}; the headless runner "
                                    f"does not pass values through switched-off nodes: switch it back on or reconnect")


def resolve_reroutes(node_id, slot, by_id: dict, links: dict, resolved: Optional[dict] = None) -> tuple:
    """``(node id, output slot)`` a link really comes from when it passes through Reroute nodes.

    ``resolved`` (Reroute id -> where it leads), shared between the calls for one workflow, keeps the
    work linear in the workflow's size however long the chains of Reroutes are.
    """
    resolved = {} if resolved is None else resolved
    trail, seen = [], set()
    while by_id.get(node_id, {}).get("type") == "Reroute" and node_id not in seen:
        if node_id in resolved:
            node_id, slot = resolved[node_id]
            break
        seen.add(node_id)
        trail.append(node_id)
        incoming = [s.get("link") for s in by_id[node_id].get("inputs") or []
                    if isinstance(s, dict) and s.get("link") in links]
        if not incoming:
            break
        node_id, slot = links[incoming[0]][0], links[incoming[0]][1]
    for reroute in trail:
        resolved[reroute] = (node_id, slot)
    return node_id, slot


def check_api_workflow(api: dict, classes: dict) -> None:
    """An API-format graph: node objects of known types, links to existing nodes and outputs of the right
    type, every required input connected or given, no input a node does not have, an output to run for."""
    from ..nodes.validation import input_specs, is_widget

    if not api:
        raise WorkflowError("the workflow has no nodes to run")
    if len(api) > MAX_NODES:
        raise WorkflowError(f"the workflow has {len(api)} nodes, more than the {MAX_NODES} a workflow may have")
    for node_id, node in api.items():
        if not isinstance(node, dict) or not isinstance(node.get("inputs", {}), dict):
            raise WorkflowError(f"node {node_id} is not a node object with 'class_type' and 'inputs'")
        kind = node.get("class_type")
        if kind not in classes:
            raise WorkflowError(f"node {node_id} is a '{kind}', which this runner does not know (it runs this pack's "
                                f"nodes and these ComfyUI core nodes: {', '.join(sorted(classes))})")
    producers = _producers(classes)
    for node_id, node in api.items():
        label = node_label(node_id, node)
        cls = classes[node["class_type"]]
        specs = {name: (kind, options, required) for name, kind, options, required in input_specs(cls)}
        for name, value in node.get("inputs", {}).items():
            if name == UPLOAD_WIDGET:
                continue
            if name not in specs:
                raise WorkflowError(f"{label} has no input '{name}' (it has {', '.join(specs)}); remove it from the workflow")
            if isinstance(value, list):
                _check_link(label, name, value, specs[name][0], api, classes)
        for name, (kind, options, required) in specs.items():
            if not required or node.get("inputs", {}).get(name) is not None:
                continue
            if is_widget(kind, options):
                raise WorkflowError(f"{label}: input '{name}' has no value; give one (e.g. --set {node_id}.{name}=...)")
            sources = producers.get(kind, [])
            hint = f"the {sources[0][1]} output of an {sources[0][0]} node" if sources else f"a {kind} output"
            raise WorkflowError(f"{label}: required input '{name}' ({kind}) is not connected; connect it to {hint}")
    if not any(getattr(classes[n["class_type"]], "OUTPUT_NODE", False) for n in api.values()):
        raise WorkflowError("the workflow has no output node (such as MGLD Save Video), so running it would produce "
                            "nothing; add one")


def _check_link(label: str, name: str, value: list, kind, api: dict, classes: dict) -> None:
    if len(value) != 2 or not isinstance(value[1], int) or isinstance(value[1], bool):
        raise WorkflowError(f"{label}: input '{name}' = {value!r} is not a link [node id, output index]")
    source = api.get(str(value[0]))
    if source is None:
        raise WorkflowError(f"{label}: input '{name}' is linked to node {value[0]}, which is not in the workflow; "
                            f"reconnect the input")
    returns = tuple(classes[source["class_type"]].RETURN_TYPES)
    if not 0 <= value[1] < len(returns):
        raise WorkflowError(f"{label}: input '{name}' is linked to output {value[1]} of {node_label(value[0], source)}, "
                            f"which has {len(returns)} outputs; reconnect the input")
    given = returns[value[1]]
    if isinstance(kind, (list, tuple)) or "*" in (kind, given) or given == kind:
        return
    names = getattr(classes[source["class_type"]], "RETURN_NAMES", returns)
    raise WorkflowError(f"{label}: input '{name}' takes {kind} but is connected to output '{names[value[1]]}' "
                        f"({given}) of {node_label(value[0], source)}; connect a {kind} output")


def _producers(classes: dict) -> dict:
    """Type -> [(display name, output name)] of the nodes that make it (for 'connect it to ...' hints)."""
    from .. import NODE_DISPLAY_NAME_MAPPINGS

    out: dict = {}
    for kind, cls in classes.items():
        names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
        for type_name, output in zip(cls.RETURN_TYPES, names):
            out.setdefault(type_name, []).append((NODE_DISPLAY_NAME_MAPPINGS.get(kind, kind), output))
    return out


# --------------------------------------------------------------------------------------------------
# 2. Values


def check_values(api: dict, classes: dict, output_given: bool = False) -> None:
    """Every node's widget values and combinations; values are converted in place (``"5"`` -> 5).

    ``output_given``: the file goes to ``--output`` (the saver that has an ``output_path``), so that
    saver's prefix names nothing in the output folder and is not checked there.
    """
    from ..nodes.validation import InputError, check_node

    for node_id, node in api.items():
        cls = classes[node["class_type"]]
        widgets = {k: v for k, v in node["inputs"].items() if not is_link(v, api)}
        if output_given and "filename_prefix" in widgets and node.get("output_path"):
            widgets.pop("filename_prefix")
        for name in WEIGHT_WIDGETS:  # the choices are the files there: a missing one is said with the others
            if isinstance(widgets.get(name), str):
                widgets.pop(name)
        try:
            node["inputs"].update(check_node(cls, widgets, node=node_label(node_id, node)))
        except InputError as err:
            raise WorkflowError(str(err)) from None


# --------------------------------------------------------------------------------------------------
# 3. What the input file tells


def _source(api: dict, node: dict, name: str) -> tuple[Optional[str], Optional[dict]]:
    value = node["inputs"].get(name)
    if is_link(value, api):
        return str(value[0]), api[str(value[0])]
    return None, None


def check_media(api: dict, classes: dict, streamed: bool = True, device=None) -> None:
    """Checks that need the LR video's header: it is readable, the frame range exists, the tile fits the
    latent grid, h265 gets wide enough frames, and the clip fits the machine's memory."""
    from ..nodes import host
    from ..nodes.video import MGLDLoadVideo, selected_frames
    from ..pipeline.memory import footprint
    from ..pipeline import defaults, video_io
    from ..pipeline.frames import LRPlan

    clips, probed, problems = {}, {}, {}
    for node_id, node in api.items():
        widget = {"MGLDLoadVideo": "video", "LoadVideo": "file"}.get(node["class_type"])  # LoadVideo: ComfyUI's
        if widget is None:
            continue
        inputs, label = node["inputs"], node_label(node_id, node)
        video = inputs.get(widget)
        if not isinstance(video, str):
            continue
        path = MGLDLoadVideo._resolve(video)
        start, count, every = inputs.get("start_frame", 0), inputs.get("frame_count", 0), inputs.get("every_nth", 1)
        try:
            if path not in probed:  # a file read by many loaders is opened once
                probed[path] = video_io.probe_video(path)
            info = probed[path]
            if (path, start, count, every) not in problems:
                problems[path, start, count, every] = (
                    video_io.sequence_size_problem(path, start, count, every) if info.is_image_sequence
                    else None if video_io.holds_frames(path) else "its video stream holds no frames that decode")
            problem = problems[path, start, count, every]
        except video_io.VideoReadError as err:
            raise WorkflowError(f"{label}: {widget} = {video!r}: {err}; choose a readable video (--input FILE)") from None
        if problem:
            raise WorkflowError(f"{label}: {widget} = {video!r}: {problem}; choose another video (--input FILE)")
        total = info.frame_count
        if total is not None and start >= total:
            raise WorkflowError(f"{label}: start_frame = {start}: the video has {total} frames; set start_frame to at "
                                f"most {total - 1}")
        clips[node_id] = (max(selected_frames(info, start, count, every), 1), info)
    savers_of = _savers_by_sampler(api)
    for node_id, node in api.items():
        if node["class_type"] not in ("MGLDSampler", "MGLDSamplerOfficial"):
            continue
        source_id, _ = _source(api, node, "frames")
        if source_id not in clips:
            continue
        frames, info = clips[source_id]
        inputs, label = node["inputs"], node_label(node_id, node)
        scale = inputs.get("scale", defaults.OFFICIAL_SCALE)  # the official sampler has none: the script's
        try:
            plan = LRPlan.create(info.height, info.width, scale)
        except ValueError as err:
            raise WorkflowError(f"{label}: {err} (the video is {info.width}x{info.height}); use a larger video") from None
        grid = min(plan.latent_size)
        tile = inputs.get("tile_size")
        if node["class_type"] == "MGLDSampler" and isinstance(tile, int) and tile > grid:
            raise WorkflowError(f"{label}: tile_size = {tile}: larger than the {plan.latent_size[0]}x{plan.latent_size[1]} "
                                f"latent grid of this {info.width}x{info.height} video at x{scale:g}; set at most "
                                f"{plan.largest_tile}")
        _check_saved_width(api, savers_of.get(node_id, []), plan)
        window = inputs.get("window", defaults.OFFICIAL_WINDOW) or defaults.OFFICIAL_WINDOW  # likewise
        need = footprint.clip_footprint(frames, plan, window=window, streamed=streamed)
        what = (f"{frames} frames of {info.width}x{info.height} (node {source_id}) upscaled x{scale:g} to "
                f"{plan.output_size[1]}x{plan.output_size[0]} ({label})")
        fix = ("load fewer frames (frame_count), lower the scale or use a smaller video"
               if frames > 1 else "lower the scale or use a smaller video")
        try:
            footprint.check_fits(need, device if device is not None else host.compute_device(), what, fix)
        except footprint.NotEnoughMemory as err:
            raise WorkflowError(str(err)) from None


def _savers_by_sampler(api: dict) -> dict:
    """Sampler id -> the savers its latents reach (directly, or through one MGLD Decode), in one pass."""
    decoded_by = {}  # decoder id -> sampler id
    for node_id, node in api.items():
        if node["class_type"] in ("MGLDDecode",) + SAVERS:
            source = _source(api, node, "latent")[0]
            if source is not None:
                decoded_by[node_id] = source
    reached: dict = {}
    for node_id, node in api.items():
        if node["class_type"] not in SAVERS:
            continue
        sampler = decoded_by.get(node_id)
        if sampler is None and node["class_type"] == "MGLDSaveVideo":
            sampler = decoded_by.get(_source(api, node, "frames")[0])
        if sampler is not None:
            reached.setdefault(sampler, []).append(node_id)
    return reached


def _check_saved_width(api: dict, savers: list, plan) -> None:
    """h265 refuses frames narrower than 64 px (libx265 crashes on them): say so before sampling."""
    from ..pipeline.video_io import MIN_H265_WIDTH

    width = plan.output_size[1]
    for node_id in savers:
        node = api[node_id]
        if node["inputs"].get("codec") == "h265" and width < MIN_H265_WIDTH:
            raise WorkflowError(f"{node_label(node_id, node)}: codec = 'h265': the result is {width} px wide and h265 "
                                f"needs at least {MIN_H265_WIDTH}; choose h264 or ffv1")


__all__ = ["WorkflowError", "check_api_workflow", "check_document", "check_media", "check_ui_workflow", "check_values",
           "node_label"]
