#!/usr/bin/env python3
"""Build the shipped UI-format workflows from the node definitions, so widget order never drifts.

    python workflows/build_workflows.py      # rewrites example_workflows/*.json

``example_workflows/`` is the one place workflows live: ComfyUI lists every ``*.json`` of a pack's
``example_workflows/``, ``workflows/``, ``examples/``, ... folder in its template browser, so a
second copy here would show each template twice. This folder keeps only the generator.
"""
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from run_workflow import load_pack  # noqa: E402

SAMPLE = "sample_lr.mp4"

#: Core ComfyUI nodes used by the advanced workflow: inputs (name, type, widget?) and outputs, as in ComfyUI 0.3.6x.
CORE_NODES = {
    "PreviewImage": {"inputs": [("images", "IMAGE", False)], "outputs": [], "widgets": []},
    "LoadVideo": {"inputs": [], "outputs": [("VIDEO", "VIDEO")], "widgets": [SAMPLE, "image"]},
    "CreateVideo": {"inputs": [("images", "IMAGE", False), ("fps", "FLOAT", True), ("audio", "AUDIO", False)],
                    "outputs": [("VIDEO", "VIDEO")], "widgets": [30.0]},
    "SaveVideo": {"inputs": [("video", "VIDEO", False)], "outputs": [], "widgets": ["MGLD/advanced", "auto", "auto"]},
}


def default_widgets(cls, overrides):
    from mgld_vsr.runner.graph import widget_layout

    values = []
    for name, kind, options in widget_layout(cls):
        if name == "<control>":
            values.append("fixed")
        elif name == "<upload>":
            values.append("image")
        elif name in overrides:
            values.append(overrides[name])
        elif isinstance(kind, (list, tuple)):
            values.append(options.get("default", kind[0] if kind else ""))
        else:
            values.append(options.get("default", 0))
    return values


class Graph:
    def __init__(self, classes):
        self.classes, self.nodes, self.links = classes, {}, []

    def add(self, node_id, kind, pos, widgets=None, links=None, title=None, size=(320, 200)):
        widgets, links = widgets or {}, links or {}
        if kind in self.classes:
            cls = self.classes[kind]
            from mgld_vsr.runner.graph import input_specs, is_widget

            sockets = [(n, k if isinstance(k, str) else "COMBO", is_widget(k, o))
                       for n, k, o, _ in input_specs(cls)]
            outputs = list(zip(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES), cls.RETURN_TYPES))
            values = default_widgets(cls, widgets)
        else:
            spec = CORE_NODES[kind]
            sockets, outputs = spec["inputs"], spec["outputs"]
            values = [widgets.get(i, v) for i, v in enumerate(spec["widgets"])]
        inputs = []
        for name, type_, widget in sockets:
            if widget and name not in links:
                continue
            entry = {"name": name, "type": type_, "link": None}
            if widget:
                entry["widget"] = {"name": name}
            if name in links:
                source, slot = links[name]
                link_id = len(self.links) + 1
                self.links.append([link_id, source, slot, node_id, len(inputs), type_])
                self.nodes[source]["outputs"][slot]["links"].append(link_id)
                entry["link"] = link_id
            inputs.append(entry)
        self.nodes[node_id] = {
            "id": node_id, "type": kind, "pos": list(pos), "size": list(size), "flags": {}, "order": len(self.nodes),
            "mode": 0, "inputs": inputs,
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i} for i, (n, t) in enumerate(outputs)],
            "properties": {"Node name for S&R": kind}, "widgets_values": values,
        }
        if title:
            self.nodes[node_id]["title"] = title

    def to_json(self):
        return {"last_node_id": max(self.nodes), "last_link_id": len(self.links), "nodes": list(self.nodes.values()),
                "links": self.links, "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}},
                "version": 0.4}


def sampled_clip(classes) -> "Graph":
    """Nodes 1-6 of the basic graph: the three loaders, the LR video, its flow and the default sampler."""
    g = Graph(classes)
    g.add(1, "MGLDDiffusionModelLoader", (40, 40), {"ckpt_name": "mgldvsr_unet.ckpt"}, size=(340, 110))
    g.add(2, "MGLDVideoVAELoader", (40, 190), {"vae_name": "video_vae_cfw.ckpt"}, size=(340, 110))
    g.add(3, "MGLDRAFTLoader", (40, 340), {"raft_name": "raft-things.pth"}, size=(340, 90))
    g.add(4, "MGLDLoadVideo", (40, 470), {"video": SAMPLE}, size=(340, 260))
    g.add(5, "MGLDFlow", (440, 450), links={"raft": (3, 0), "frames": (4, 0)}, size=(320, 220))
    g.add(6, "MGLDSampler", (440, 40), links={"model": (1, 0), "frames": (4, 0), "flow": (5, 0)}, size=(340, 360))
    return g


def basic(classes):
    g = sampled_clip(classes)
    g.add(7, "MGLDDecode", (840, 40), links={"video_vae": (2, 0), "latent": (6, 0), "frames": (4, 0)}, size=(320, 200))
    g.add(8, "MGLDSaveVideo", (840, 290), links={"frames": (7, 0), "fps": (4, 1), "audio": (4, 2)},
          size=(320, 440))  # room for the video preview under the widgets
    return g.to_json()


def advanced(classes):
    """Core video nodes in and out, flow previews, and two samplers compared by the warping error."""
    g = Graph(classes)
    g.add(1, "MGLDDiffusionModelLoader", (40, 40), {"ckpt_name": "mgldvsr_unet.ckpt"}, size=(340, 110))
    g.add(2, "MGLDVideoVAELoader", (40, 190), {"vae_name": "video_vae_cfw.ckpt"}, size=(340, 110))
    g.add(3, "MGLDRAFTLoader", (40, 340), {"raft_name": "raft-things.pth"}, size=(340, 90))
    g.add(4, "LoadVideo", (40, 470), {0: SAMPLE}, title="Load Video (core)", size=(340, 330))
    g.add(5, "MGLDLoadVideo", (40, 840), {"video": SAMPLE}, links={"video_input": (4, 0)}, size=(340, 250))
    g.add(6, "MGLDFlow", (440, 560), links={"raft": (3, 0), "frames": (5, 0)}, size=(320, 220))
    g.add(7, "PreviewImage", (440, 820), links={"images": (6, 1)}, title="Flow (colour wheel)", size=(320, 280))
    g.add(8, "PreviewImage", (780, 820), links={"images": (6, 2)}, title="Occlusion masks", size=(320, 280))
    g.add(9, "MGLDSampler", (440, 40), links={"model": (1, 0), "frames": (5, 0), "flow": (6, 0)},
          title="Sampler: guidance 10 (official strength)", size=(340, 330))
    g.add(10, "MGLDSampler", (800, 40), {"guidance_strength": 0.0}, links={"model": (1, 0), "frames": (5, 0), "flow": (6, 0)},
          title="Sampler: no guidance", size=(340, 330))
    g.add(11, "MGLDDecode", (1180, 40), links={"video_vae": (2, 0), "latent": (9, 0), "frames": (5, 0)}, size=(320, 190))
    g.add(12, "MGLDDecode", (1180, 270), links={"video_vae": (2, 0), "latent": (10, 0), "frames": (5, 0)}, size=(320, 190))
    g.add(13, "MGLDWarpingError", (1540, 40), {"label": "guidance 10", "label_b": "no guidance"},
          links={"frames": (11, 0), "flow": (6, 0), "frames_b": (12, 0)}, size=(380, 250))
    g.add(14, "PreviewImage", (1540, 330), links={"images": (13, 1)}, title="Warping error (red: guided, blue: unguided)",
          size=(380, 300))
    g.add(15, "CreateVideo", (1180, 530), links={"images": (11, 0), "fps": (5, 1), "audio": (5, 2)},
          title="Create Video (core)", size=(300, 110))
    g.add(16, "SaveVideo", (1180, 680), title="Save Video (core)", links={"video": (15, 0)}, size=(320, 330))
    g.add(17, "PreviewImage", (440, 1140), links={"images": (6, 3)}, title="Scene cuts (one strip per boundary)",
          size=(660, 240))
    return g.to_json()


def long_video(classes):
    """The basic graph with the decoder and saver merged, so the upscaled clip is written frame by frame."""
    g = sampled_clip(classes)
    g.add(7, "MGLDDecodeAndSave", (840, 40), {"filename_prefix": "MGLD/mgld_vsr_long"},
          links={"video_vae": (2, 0), "latent": (6, 0), "frames": (4, 0), "fps": (4, 1), "audio": (4, 2)},
          size=(340, 540))  # room for the video preview under the widgets
    return g.to_json()


def x4_fps_x2(classes):
    """The basic graph, then twice the frame rate: interpolated with the LR clip's flow (no second RAFT run)."""
    g = sampled_clip(classes)
    g.add(7, "MGLDDecode", (840, 40), links={"video_vae": (2, 0), "latent": (6, 0), "frames": (4, 0)}, size=(320, 200))
    g.add(8, "MGLDInterpolateFrames", (840, 290),
          links={"frames": (7, 0), "fps": (4, 1), "audio": (4, 2), "flow": (5, 0)}, size=(320, 190))
    g.add(9, "MGLDSaveVideo", (1200, 40), {"filename_prefix": "MGLD/mgld_vsr_x4_fps_x2"},
          links={"frames": (8, 0), "fps": (8, 1), "audio": (8, 2)}, size=(320, 220))
    return g.to_json()


def interpolate(classes):
    """Frame interpolation alone, for any video: RAFT on the frames themselves."""
    g = Graph(classes)
    g.add(1, "MGLDRAFTLoader", (40, 40), {"raft_name": "raft-things.pth"}, size=(340, 90))
    g.add(2, "MGLDLoadVideo", (40, 170), {"video": SAMPLE}, size=(340, 260))
    g.add(3, "MGLDInterpolateFrames", (440, 40), links={"frames": (2, 0), "fps": (2, 1), "audio": (2, 2), "raft": (1, 0)},
          size=(320, 190))
    g.add(4, "MGLDSaveVideo", (800, 40), {"filename_prefix": "MGLD/mgld_interpolate_x2"},
          links={"frames": (3, 0), "fps": (3, 1), "audio": (3, 2)}, size=(320, 220))
    return g.to_json()


def tune_guidance(classes):
    """Loaders -> LR video -> flow -> guidance preview sweep -> grid and A/B view; the full run muted until a
    strength is picked (un-mute nodes 9-11 and set the sampler's guidance_strength)."""
    g = Graph(classes)
    g.add(1, "MGLDDiffusionModelLoader", (40, 40), {"ckpt_name": "mgldvsr_unet.ckpt"}, size=(340, 110))
    g.add(2, "MGLDVideoVAELoader", (40, 190), {"vae_name": "video_vae_cfw.ckpt"}, size=(340, 110))
    g.add(3, "MGLDRAFTLoader", (40, 340), {"raft_name": "raft-things.pth"}, size=(340, 90))
    g.add(4, "MGLDLoadVideo", (40, 470), {"video": SAMPLE}, size=(340, 260))
    g.add(5, "MGLDFlow", (440, 40), links={"raft": (3, 0), "frames": (4, 0)}, size=(360, 220))
    g.add(6, "MGLDGuidancePreview", (440, 300),
          links={"model": (1, 0), "video_vae": (2, 0), "frames": (4, 0), "flow": (5, 0)},
          title="Guidance preview: sweep on a region", size=(360, 480))
    g.add(7, "PreviewImage", (840, 40), links={"images": (6, 0)}, title="Grid: one frame per strength (1:1)",
          size=(520, 300))
    g.add(8, "PreviewImage", (840, 380), links={"images": (6, 4)}, title="A/B: compare_a | compare_b", size=(520, 300))
    g.add(12, "PreviewImage", (840, 720), links={"images": (6, 1)}, title="Clips, strength after strength",
          size=(520, 300))
    g.add(9, "MGLDSampler", (1400, 40), links={"model": (1, 0), "frames": (4, 0), "flow": (5, 0)},
          title="Full run: set the chosen guidance_strength, then un-mute 9-11", size=(340, 360))
    g.add(10, "MGLDDecode", (1400, 440), links={"video_vae": (2, 0), "latent": (9, 0), "frames": (4, 0)},
          size=(320, 200))
    g.add(11, "MGLDSaveVideo", (1820, 40), {"filename_prefix": "MGLD/mgld_vsr_tuned"},
          links={"frames": (10, 0), "fps": (4, 1), "audio": (4, 2)}, size=(320, 440))
    for node in (9, 10, 11):
        g.nodes[node]["mode"] = MUTED
    return g.to_json()


#: LiteGraph's node mode "never" (muted): the node and what only it feeds do not run.
MUTED = 2

WORKFLOWS = (("mgld_vsr_basic.json", basic), ("mgld_vsr_advanced.json", advanced),
             ("mgld_vsr_long_video.json", long_video), ("mgld_vsr_x4_fps_x2.json", x4_fps_x2),
             ("mgld_interpolate_x2.json", interpolate), ("mgld_vsr_tune_guidance.json", tune_guidance))


def main():
    pack = load_pack()
    folder = ROOT / "example_workflows"
    folder.mkdir(exist_ok=True)
    for name, build in WORKFLOWS:
        (folder / name).write_text(json.dumps(build(pack.NODE_CLASS_MAPPINGS), indent=1) + "\n")
        print(folder / name)


if __name__ == "__main__":
    main()
