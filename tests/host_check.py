#!/usr/bin/env python3
"""Check the pack in a real ComfyUI server and its web frontend (not part of the CI suite: it needs ComfyUI).

    python tests/host_check.py --comfyui-dir DIR --python VENV_PYTHON --out OUT [--tool comfy_host_check.py]

1. Server checks (its own short-lived ComfyUI, standard library only): every node registered in an
   ``MGLD-VSR/...`` category; the samplers output ``MGLD_LATENT``, and a prompt wiring a sampler into
   core *VAE Decode* is refused by ComfyUI's validation; each template listed once by
   ``/workflow_templates`` with its ``.jpg`` thumbnail served; a help page served (200) for every node;
   the frontend extension listed.
2. Frontend runs (``comfy_host_check.py``, the shared real-host tool): a copy of every shipped workflow
   with 1 step and 6 frames is loaded in the real frontend in headless Chromium, converted, executed
   to success with tiny release-format weights (``make_release.py``), the flow node given a manual
   scene cut (``MANUAL_CUTS``, shown by the advanced workflow's scene-cut preview), and screenshotted to
   ``OUT/shots/<workflow>.png`` (look at them: no overlapping widgets, figures on the warping-error
   node). The server log must show ComfyUI's model manager loading the pack's networks.

Prints one JSON summary line and exits 0 when every check passed.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
STEPS, FRAMES = 1, 6
MANUAL_CUTS = "cut after: 2"


def quick_copy(workflow: dict) -> dict:
    """The workflow with 1 sampling step and 6 loaded frames (what a frontend check needs to finish fast)."""
    for node in workflow["nodes"]:
        if node["type"] in ("MGLDSampler", "MGLDSamplerOfficial", "MGLDGuidancePreview"):
            node["widgets_values"][0] = STEPS
        elif node["type"] == "MGLDLoadVideo":
            node["widgets_values"][2] = FRAMES  # video, start_frame, frame_count, ...
        elif node["type"] == "MGLDFlow":
            # scene_cut_threshold, devices, cut_detector, manual_cuts: a manual cut, so the real host shows the
            # manual list parsed and applied, and the cut_preview strip of that boundary (see its screenshot)
            node["widgets_values"][3] = MANUAL_CUTS
    return workflow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def post(port: int, path: str, body: dict):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def error_type_shown(port: int) -> str | None:
    """The exception type ComfyUI reports for a pack error (a RAFT file given to the diffusion loader)."""
    prompt = {
        "1": {"class_type": "MGLDDiffusionModelLoader", "inputs": {"ckpt_name": "raft-things.pth", "precision": "auto"}},
        "2": {"class_type": "MGLDVideoVAELoader", "inputs": {"vae_name": "video_vae_cfw.ckpt", "precision": "auto"}},
        "3": {"class_type": "MGLDLoadVideo", "inputs": {"video": "sample_lr.mp4", "start_frame": 0, "frame_count": 2,
                                                       "every_nth": 1, "force_fps": 0.0}},
        "4": {"class_type": "MGLDRAFTLoader", "inputs": {"raft_name": "raft-things.pth"}},
        "5": {"class_type": "MGLDFlow", "inputs": {"raft": ["4", 0], "frames": ["3", 0], "scene_cut_threshold": 0.5}},
        "6": {"class_type": "MGLDSamplerOfficial", "inputs": {"model": ["1", 0], "frames": ["3", 0], "flow": ["5", 0],
                                                             "steps": 1, "guidance_strength": 10.0, "seed": 42,
                                                             "tile_overlap": 32}},
        "7": {"class_type": "MGLDDecode", "inputs": {"video_vae": ["2", 0], "latent": ["6", 0], "frames": ["3", 0],
                                                    "fusion_w": 0.5, "color_fix": "adain", "decode_tile": 768}},
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
    }
    status, answer = post(port, "/prompt", {"prompt": prompt})
    if status != 200:
        return None
    prompt_id = answer["prompt_id"]
    for _ in range(600):
        history = json.loads(get(port, f"/history/{prompt_id}")[2]).get(prompt_id)
        if history and history.get("status", {}).get("completed") is not None:
            for event, data in history["status"].get("messages", []):
                if event == "execution_error":
                    return data.get("exception_type")
            return "no error"
        time.sleep(0.5)
    return None


#: In the page: for each template name, how many cards carry it as their title and whether the
#: card's thumbnail image loaded (the frontend shows cached thumbnails through blob: URLs).
TEMPLATE_CARDS_JS = r"""((names) => {
  const leaves = [...document.querySelectorAll('body *')].filter(e => e.children.length === 0);
  return names.map(name => {
    const titles = leaves.filter(e => e.textContent.trim() === name);
    let card = titles[0];
    for (let k = 0; k < 10 && card && !card.querySelector('img'); k++) card = card.parentElement;
    const img = card && card.querySelector('img');
    return {name, cards: titles.length, thumbnail: !!img && img.complete && img.naturalWidth > 0};
  });
})(%s)"""

CLICK_TEXT_JS = r"""(() => {
  const hit = [...document.querySelectorAll('body *')].find(e => e.children.length === 0 && e.textContent.trim() === %s);
  if (hit) hit.click();
  return !!hit;
})()"""


def template_browser(args, port: int, pack: str, names: list, shot: pathlib.Path) -> dict:
    """Open the real frontend's template browser on the pack's category: cards shown, thumbnails loaded."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("comfy_host_check", args.tool)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    browser = tool.Browser(shutil.which("chromium") or "chromium", 1600, 1000)
    try:
        browser.navigate(f"http://127.0.0.1:{port}/")
        for _ in range(180):
            try:
                if browser.eval(tool.PAGE_READY_JS, timeout=10):
                    break
            except (RuntimeError, TimeoutError):
                pass
            time.sleep(0.5)
        time.sleep(2)
        browser.eval('app.extensionManager.command.execute("Comfy.BrowseTemplates"); true')
        time.sleep(4)
        clicked = browser.eval(CLICK_TEXT_JS % json.dumps(pack))
        time.sleep(4)
        cards = browser.eval(TEMPLATE_CARDS_JS % json.dumps(names)) or []
        browser.screenshot(str(shot))
        return {"category_found": clicked, "cards": cards}
    finally:
        browser.close()


def server_checks(args, models: pathlib.Path, work: pathlib.Path) -> dict:
    """Start ComfyUI with the pack linked in, run the HTTP checks, stop it."""
    pack = REPO.name
    for sub in ("custom_nodes", "input", "output", "temp", "user/default"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    # no first-run dialog over the page (as the shared tool does)
    (work / "user" / "default" / "comfy.settings.json").write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    (work / "custom_nodes" / pack).symlink_to(REPO)
    (work / "models").symlink_to(models)
    port = free_port()
    log = open(work / "comfyui.log", "w")
    server = subprocess.Popen([args.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                               "--disable-auto-launch", "--base-directory", str(work),
                               "--database-url", "sqlite:///:memory:"], cwd=args.comfyui_dir, stdout=log,
                              stderr=subprocess.STDOUT)
    checks = {}
    try:
        for _ in range(360):
            try:
                if get(port, "/system_stats")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        info = json.loads(get(port, "/object_info")[2])
        ours = {name: spec for name, spec in info.items() if spec.get("python_module") == f"custom_nodes.{pack}"}
        checks["nodes"] = sorted(ours)
        checks["categories_ok"] = all(spec["category"].startswith("MGLD-VSR/") for spec in ours.values())
        samplers = ("MGLDSampler", "MGLDSamplerOfficial")
        checks["sampler_outputs"] = {n: ours[n]["output"] for n in samplers if n in ours}
        checks["samplers_ok"] = checks["sampler_outputs"] == {n: ["MGLD_LATENT"] for n in samplers}
        checks["vae_decode_input"] = info["VAEDecode"]["input"]["required"]["samples"][0]
        # A sampler wired into core VAE Decode, as a hand-edited API prompt would: ComfyUI must refuse it.
        prompt = {
            "1": {"class_type": "MGLDDiffusionModelLoader", "inputs": {"ckpt_name": "mgldvsr_unet.ckpt", "precision": "auto"}},
            "2": {"class_type": "MGLDLoadVideo", "inputs": {"video": "sample_lr.mp4", "start_frame": 0, "frame_count": 2,
                                                           "every_nth": 1, "force_fps": 0.0}},
            "3": {"class_type": "MGLDRAFTLoader", "inputs": {"raft_name": "raft-things.pth"}},
            "4": {"class_type": "MGLDFlow", "inputs": {"raft": ["3", 0], "frames": ["2", 0], "scene_cut_threshold": 0.5}},
            "5": {"class_type": "MGLDSampler", "inputs": {"model": ["1", 0], "frames": ["2", 0], "flow": ["4", 0],
                                                        "steps": 1, "guidance_strength": 10.0, "seed": 0, "scale": 4.0,
                                                        "window": 5, "window_overlap": 0, "tile_size": 64,
                                                        "tile_overlap": 0}},
            "6": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "none.safetensors"}},
            "7": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["6", 2]}},
            "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
        }
        status, answer = post(port, "/prompt", {"prompt": prompt})
        errors = [e for node in (answer.get("node_errors") or {}).values() for e in node.get("errors", [])]
        checks["vae_decode_refused"] = status == 400 and any(
            e.get("type") == "return_type_mismatch" and (e.get("extra_info") or {}).get("input_name") == "samples"
            for e in errors)
        checks["error_shown_as"] = error_type_shown(port)
        templates = json.loads(get(port, "/workflow_templates")[2]).get(pack, [])
        shipped = sorted(p.stem for p in (REPO / "example_workflows").glob("*.json"))
        checks["templates"] = sorted(templates)
        checks["templates_once"] = sorted(templates) == shipped
        thumbs = {name: get(port, f"/api/workflow_templates/{pack}/{name}.jpg")[:2] for name in shipped}
        checks["thumbnails_ok"] = all(s == 200 and "jpeg" in t for s, t in thumbs.values())
        docs = {name: get(port, f"/extensions/{pack}/docs/{name}.md")[0] for name in ours}
        checks["help_pages"] = docs
        checks["help_pages_ok"] = bool(docs) and set(docs.values()) == {200}
        extensions = json.loads(get(port, "/extensions")[2])
        checks["extension_listed"] = f"/extensions/{pack}/js/mgld_vsr.js" in extensions
        (args.out_path / "shots").mkdir(parents=True, exist_ok=True)
        browser = template_browser(args, port, pack, shipped, args.out_path / "shots" / "template_browser.png")
        checks["template_browser"] = browser
        checks["template_browser_ok"] = browser["category_found"] and all(
            card["cards"] == 1 and card["thumbnail"] for card in browser["cards"])
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui-dir", default=os.environ.get("COMFYUI_DIR"), required="COMFYUI_DIR" not in os.environ)
    parser.add_argument("--python", default=os.environ.get("COMFY_PY"), required="COMFY_PY" not in os.environ)
    parser.add_argument("--tool", default=str(SHARED / "tools" / "comfy_host_check.py"))
    parser.add_argument("--release-maker", default=str(SHARED / "reference" / "make_release.py"))
    parser.add_argument("--out", required=True, help="folder for weights, workflow copies, screenshots, outputs, logs")
    parser.add_argument("--only", nargs="*", help="workflow names to run (default: all shipped)")
    parser.add_argument("--skip-server-checks", action="store_true")
    parser.add_argument("--run-timeout", type=int, default=2400, help="seconds per workflow run (CPU: minutes)")
    args = parser.parse_args()
    out = args.out_path = pathlib.Path(args.out).resolve()
    models = out / "models"
    if not (models / "mgld" / "mgldvsr_unet.ckpt").exists():
        subprocess.run([sys.executable, args.release_maker, str(models / "mgld")], check=True, stdout=subprocess.DEVNULL)
    summary = {"ok": True}
    if not args.skip_server_checks:
        work = pathlib.Path(tempfile.mkdtemp(prefix="mgld-host-", dir=out))
        checks = server_checks(args, models, work)
        summary["server"] = checks
        summary["ok"] &= checks.get("error_shown_as") == "CheckpointError"
        summary["ok"] &= all(checks.get(k) for k in ("categories_ok", "samplers_ok", "vae_decode_refused",
                                                     "templates_once", "thumbnails_ok", "help_pages_ok",
                                                     "extension_listed", "template_browser_ok"))
    copies = out / "workflows"
    copies.mkdir(parents=True, exist_ok=True)
    runs = []
    for path in sorted((REPO / "example_workflows").glob("*.json")):
        if args.only and path.stem not in args.only:
            continue
        copy = copies / path.name
        copy.write_text(json.dumps(quick_copy(json.loads(path.read_text())), indent=1))
        work = out / f"run-{path.stem}"
        shutil.rmtree(work, ignore_errors=True)
        result = subprocess.run([sys.executable, args.tool, "--comfyui-dir", args.comfyui_dir, "--python", args.python,
                                 "--pack", str(REPO), "--models-dir", str(models), "--workflow", str(copy),
                                 "--screenshot", str(out / "shots" / f"{path.stem}.png"), "--out-dir",
                                 str(out / "outputs" / path.stem), "--work-dir", str(work), "--window", "2200x1300", "--run-timeout", str(args.run_timeout),
                                 "--summary-json", str(out / f"{path.stem}.summary.json")],
                                capture_output=True, text=True)
        report = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}
        run = (report.get("runs") or [{}])[0]
        log = (work / "comfyui.log").read_text(errors="replace") if (work / "comfyui.log").exists() else ""
        managed = sorted({line.split("Requested to load ")[1].strip() for line in log.splitlines()
                          if "Requested to load " in line})
        runs.append({"workflow": path.stem, "status": run.get("status"), "error": run.get("error"),
                     "missing_nodes": report.get("missing_nodes") or run.get("missing_nodes"),
                     "execution_s": run.get("execution_s"), "loaded_by_comfyui": managed,
                     "page_errors": [e for e in report.get("ui_page_errors") or [] if "reading 'id'" not in e],
                     "screenshot": run.get("screenshot") or report.get("screenshot")})
        summary["ok"] &= run.get("status") == "success" and bool(managed)
    summary["runs"] = runs
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
