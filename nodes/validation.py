"""Every node input checked before any work: one rule set for ComfyUI and the headless runner.

Why here and not in the node functions: a bad value found by a node's function is found after the
loaders, the flow and possibly hours of sampling have run. ComfyUI calls a node's
``VALIDATE_INPUTS`` for the whole prompt before it executes anything, and the headless runner
calls :func:`check_node` for every node before the first loader, so both refuse at once.

ComfyUI calls ``VALIDATE_INPUTS`` with the widget values it has already converted (``int("5")``,
``float("nan")``); linked inputs arrive as None, and the inputs the method names are exempt from
ComfyUI's own min/max/list checks (and NaN passes those anyway), so the checks below are
complete on their own: type, NaN/inf, range, list membership, then the combinations a node's
function would otherwise reject late (tile vs overlap, window vs overlap, decode tile, the
output prefix). Host-free: this module never imports ComfyUI.
"""
from __future__ import annotations

import math
import os
import tempfile
from typing import Any, Callable, Optional

from ..pipeline.defaults import DECODE_TILE_STEP, LATENT_TILE_STEP
from .names import NODE_DISPLAY_NAME_MAPPINGS


class InputError(ValueError):
    """An input value a node cannot use. ``str()`` is one line: node, input, value, cause, fix."""

    def __init__(self, node: str, name: str, value: Any, cause: str, fix: str):
        self.node, self.input, self.value, self.cause, self.fix = node, name, value, cause, fix
        super().__init__(self.line())

    def line(self, where: Optional[str] = None) -> str:
        """The message, with ``where`` (e.g. ``node 6 (MGLD Sampler)``) in place of the node's name."""
        return f"{where or self.node}: {self.input} = {show(self.value)}: {self.cause}; {self.fix}"


def show(value: Any) -> str:
    """A value as a user typed it (strings quoted, floats without noise)."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return repr(value)


# --------------------------------------------------------------------------------------------------
# One widget


def input_specs(cls) -> list[tuple[str, Any, dict, bool]]:
    """``(name, type, options, required)`` of a node class, in declaration order."""
    spec = cls.INPUT_TYPES()
    out = []
    for section in ("required", "optional"):
        for name, value in (spec.get(section) or {}).items():
            kind = value[0]
            options = value[1] if len(value) > 1 and isinstance(value[1], dict) else {}
            out.append((name, kind, options, section == "required"))
    return out


def is_widget(kind, options) -> bool:
    """Whether an input is a widget (a value typed in the node) rather than a socket to connect."""
    return isinstance(kind, (list, tuple)) or (kind in ("INT", "FLOAT", "STRING", "BOOLEAN")
                                               and not options.get("forceInput"))


def coerce(node: str, name: str, kind, options: dict, value: Any) -> Any:
    """``value`` as the widget's type (numbers from strings as ComfyUI converts them), range checked.

    Raises :class:`InputError` for a value of the wrong type, NaN or infinity, outside
    ``[min, max]``, or not in a list widget's choices.
    """
    def refuse(cause: str, fix: str):
        raise InputError(node, name, value, cause, fix)

    low, high = options.get("min"), options.get("max")
    bounds = f"a number from {_number(low)} to {_number(high)}" if low is not None and high is not None else "a number"
    if isinstance(kind, (list, tuple)):
        if not isinstance(value, str) or value not in kind:
            choices = ", ".join(map(str, kind)) if len(kind) <= 12 else f"{len(kind)} choices"
            refuse("is not one of the choices", f"choose one of {choices}")
        return value
    if kind == "STRING":
        if not isinstance(value, str):
            refuse("is not text", "type a text value")
        return value
    if kind == "BOOLEAN":
        if not isinstance(value, bool):
            refuse("is not true or false", "use true or false")
        return value
    if kind not in ("INT", "FLOAT"):
        return value
    if value is None or isinstance(value, bool) or isinstance(value, (list, dict, tuple)):
        refuse("is not a number", f"set {bounds}")
    if isinstance(value, str):
        try:
            value = float(value.strip()) if kind == "FLOAT" else _int_text(value)
        except ValueError:
            refuse("is not a number", f"set {bounds}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        refuse("is not a number", f"set {bounds}")
    if not math.isfinite(number):
        refuse("is not a finite number", f"set {bounds}")
    if kind == "INT":
        if number != int(number):
            refuse("is not a whole number", f"set a whole number from {_number(low)} to {_number(high)}")
        value = int(value)
    else:
        value = float(value)
    if (low is not None and value < low) or (high is not None and value > high):
        refuse("is outside the allowed range", f"set {bounds}")
    return value


def _number(x) -> str:
    return str(x) if isinstance(x, int) or x is None else f"{x:g}"


def _int_text(text: str) -> int:
    number = float(text.strip())
    if not math.isfinite(number) or number != int(number):
        raise ValueError(text)
    return int(number)


# --------------------------------------------------------------------------------------------------
# Combinations, per node


def _whole_latent_steps(node: str, v: dict) -> None:
    tile, overlap, step = v.get("tile_size"), v.get("tile_overlap"), LATENT_TILE_STEP
    if tile is not None and tile % step:
        raise InputError(node, "tile_size", tile, f"is not a multiple of {step} latent pixels",
                         f"use {max(step, tile - tile % step)} or {tile - tile % step + step}")
    if overlap is not None and overlap % step:
        raise InputError(node, "tile_overlap", overlap, f"is not a multiple of {step} latent pixels",
                         f"use {overlap - overlap % step} or {overlap - overlap % step + step}")


def _sampler(node: str, v: dict) -> None:
    _whole_latent_steps(node, v)
    tile, overlap = v.get("tile_size"), v.get("tile_overlap")
    if tile is not None and overlap is not None and overlap >= tile:
        raise InputError(node, "tile_overlap", overlap, f"is not smaller than tile_size = {tile}",
                         f"set 0 (recommended) or at most {tile - 8}")
    window, window_overlap = v.get("window"), v.get("window_overlap")
    if window is not None and window_overlap is not None and window_overlap >= window:
        raise InputError(node, "window_overlap", window_overlap, f"is not smaller than window = {window}",
                         f"set 0 (recommended) or at most {window - 1}")


def _official_sampler(node: str, v: dict) -> None:
    _whole_latent_steps(node, v)  # its overlap's range (below the script's tile side) is the widget's


def _decoder(node: str, v: dict) -> None:
    tile, step = v.get("decode_tile"), DECODE_TILE_STEP
    if tile is not None and tile % step:
        lower = tile - tile % step
        raise InputError(node, "decode_tile", tile, f"is not a multiple of {step} pixels",
                         f"use {lower} or {lower + step}" if lower else f"use 0 (whole frames) or {step}")


def check_decode_tile(tile: int) -> None:
    """The rule of :func:`_decoder` for the decoder nodes' functions themselves, which scripts and tests
    call without ``VALIDATE_INPUTS``; the message is the one those functions have always raised."""
    if tile % DECODE_TILE_STEP:
        raise ValueError(f"decode_tile must be a multiple of {DECODE_TILE_STEP} pixels, got {tile}")


def _saver(node: str, v: dict) -> None:
    codec, pixel_format = v.get("codec"), v.get("pixel_format")
    if codec is not None and pixel_format not in (None, "auto"):
        supported = encoder_pixel_formats(codec)
        if supported is not None and pixel_format not in supported:
            fits = [f for f in PIXEL_FORMAT_CHOICES if f in supported]
            raise InputError(node, "pixel_format", pixel_format, f"cannot be encoded with {codec}",
                             f"choose auto{''.join(', ' + f for f in fits)}")
    prefix = v.get("filename_prefix")
    if prefix is not None:
        folder = check_prefix(node, prefix)
        if codec is not None:
            _check_name_length(node, prefix, folder, codec)


def _check_name_length(node: str, prefix: str, folder: str, codec: str) -> None:
    """The numbered name a prefix gives (``prefix_00001.mp4``), and the temporary name written beside it,
    must fit the file system's limit on names: refused now, not when the encoded file is renamed."""
    from ..pipeline.video_io.writer import default_suffix, name_problem

    try:
        suffix = default_suffix(codec)
    except ValueError:  # an unknown codec is refused by its own check
        return
    base = os.path.basename(prefix.replace("\\", "/").strip("/")) or "MGLD"
    problem = name_problem(os.path.join(folder, f"{base}_00001{suffix}"))
    if problem:
        raise InputError(node, "filename_prefix", prefix[:40] + "...", problem, "choose a shorter filename_prefix")


def _saver_and_decoder(node: str, v: dict) -> None:
    _decoder(node, v)
    _saver(node, v)


#: The smallest region a guidance preview shows: one 8-latent-pixel UNet unit.
MIN_REGION_PX = 8 * LATENT_TILE_STEP
#: Strengths one preview may sweep (each is a sampling of the region).
MAX_STRENGTHS = 12


def parse_region(node: str, text: Any) -> Optional[tuple[int, int, int, int]]:
    """The preview's ``region`` widget: ``None`` for ``auto``, else ``(x, y, width, height)`` in output pixels.

    The frame's size is only known when the node runs; its own check of the box against it uses the
    same message form."""
    fix = f"type auto, or x, y, width, height in output pixels (e.g. 0, 0, 256, 256)"
    if not isinstance(text, str) or not text.strip():
        raise InputError(node, "region", text, "is empty", fix)
    if text.strip().lower() == "auto":
        return None
    parts = [p for p in text.replace(";", ",").split(",")]
    try:
        numbers = [float(p.strip()) for p in parts]
    except ValueError:
        raise InputError(node, "region", text, "is not four numbers", fix) from None
    if len(numbers) != 4 or not all(math.isfinite(v) and v == int(v) for v in numbers):
        raise InputError(node, "region", text, "is not four whole numbers", fix)
    x, y, w, h = (int(v) for v in numbers)
    if x < 0 or y < 0:
        raise InputError(node, "region", text, "starts outside the frame (negative x or y)", "use x, y >= 0")
    if w <= 0 or h <= 0:
        raise InputError(node, "region", text, "is an empty box", f"give a width and height of at least {MIN_REGION_PX}")
    if w < MIN_REGION_PX or h < MIN_REGION_PX:
        raise InputError(node, "region", text, f"is smaller than {MIN_REGION_PX}x{MIN_REGION_PX} pixels",
                         f"give a width and height of at least {MIN_REGION_PX}")
    return x, y, w, h


def parse_strengths(node: str, text: Any) -> list[float]:
    """The preview's ``strengths`` widget: distinct finite numbers from 0 to 100, in the order typed."""
    fix = "type numbers from 0 to 100 separated by commas, e.g. 0, 5, 10, 20"
    if not isinstance(text, str) or not text.strip():
        raise InputError(node, "strengths", text, "is empty", fix)
    values = []
    for part in text.replace(";", ",").split(","):
        try:
            value = float(part.strip())
        except ValueError:
            raise InputError(node, "strengths", text, f"{part.strip()!r} is not a number", fix) from None
        if not math.isfinite(value):
            raise InputError(node, "strengths", text, f"{part.strip()} is not a finite number", fix)
        if not 0 <= value <= 100:
            raise InputError(node, "strengths", text, f"{part.strip()} is outside 0 to 100", fix)
        if value in values:
            raise InputError(node, "strengths", text, f"{part.strip()} is listed twice", "list each strength once")
        values.append(value)
    if len(values) > MAX_STRENGTHS:
        raise InputError(node, "strengths", text, f"lists {len(values)} strengths", f"list at most {MAX_STRENGTHS}")
    return values


def _preview(node: str, v: dict) -> None:
    _sampler(node, v)
    _decoder(node, v)
    if "region" in v:
        parse_region(node, v["region"])
    strengths = parse_strengths(node, v["strengths"]) if "strengths" in v else None
    for name in ("compare_a", "compare_b"):
        if strengths is not None and v.get(name) is not None and float(v[name]) not in strengths:
            raise InputError(node, name, v[name], "is not one of the strengths",
                             f"set one of {', '.join(f'{s:g}' for s in strengths)}")
    window, count = v.get("window"), v.get("frame_count")
    if window is not None and count is not None and count < window:
        raise InputError(node, "frame_count", count, f"is shorter than one temporal window ({window} frames)",
                         f"show at least {window} frames")


def _flow(node: str, v: dict) -> None:
    """The flow node's manual scene-cut list must parse (its frame numbers are checked against the clip later,
    still before any work: the clip's length is not known here)."""
    text = v.get("manual_cuts")
    if not isinstance(text, str):
        return
    from ..pipeline.motion.cuts import MANUAL_HELP, parse_manual

    try:
        parse_manual(text)
    except ValueError as err:
        cause = str(err).split(": " + MANUAL_HELP)[0]
        raise InputError(node, "manual_cuts", text, cause, MANUAL_HELP) from None


RULES: dict[str, Callable[[str, dict], None]] = {
    "MGLDFlow": _flow,
    "MGLDSampler": _sampler,
    "MGLDSamplerOfficial": _official_sampler,
    "MGLDDecode": _decoder,
    "MGLDSaveVideo": _saver,
    "MGLDDecodeAndSave": _saver_and_decoder,
    "MGLDGuidancePreview": _preview,
}

#: The pixel formats the save nodes offer (kept in step with nodes/video.py's list).
PIXEL_FORMAT_CHOICES = ("yuv420p", "yuv420p10le", "yuv444p", "yuv444p10le", "yuv422p10le", "rgb24")


def encoder_pixel_formats(codec: str) -> Optional[list[str]]:
    """Pixel formats the encoder behind a codec choice accepts (None: not known here)."""
    from ..pipeline.video_io.writer import encoder_pixel_formats as formats

    try:
        return formats(codec)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------
# Output locations


def output_root() -> str:
    from . import host

    return os.path.abspath(host.output_dir())


def check_prefix(node: str, prefix: str, root: Optional[str] = None) -> str:
    """The folder a save prefix writes into, refused when it leaves the output folder or cannot be written."""
    root = os.path.abspath(root or output_root())
    cleaned = prefix.replace("\\", "/").strip("/") or "MGLD"
    folder = os.path.abspath(os.path.join(root, os.path.dirname(cleaned)))
    if os.path.isabs(prefix.replace("\\", "/")) or os.path.commonpath([folder, root]) != root:
        raise InputError(node, "filename_prefix", prefix, f"points outside the output folder {root}",
                         "use a name or sub-folder inside it, e.g. MGLD/mgld_vsr")
    problem = unwritable(folder)
    if problem:
        raise InputError(node, "filename_prefix", prefix, problem,
                         "free the output folder or point ComfyUI's --output-directory elsewhere")
    return folder


def unwritable(folder: str) -> Optional[str]:
    """Why files cannot be created in ``folder`` (created on demand), or None when they can.

    Found by creating and removing a hidden file in the nearest folder that exists: permission
    bits do not tell about read-only mounts, and ``root`` passes every permission check.
    """
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        return f"{existing} is a file, not a folder"
    try:
        handle, probe = tempfile.mkstemp(prefix=".mgld-write-test-", dir=existing)
    except OSError as err:
        return f"{existing} is not writable ({err.strerror or err})"
    os.close(handle)
    os.unlink(probe)
    return None


# --------------------------------------------------------------------------------------------------
# Whole nodes


def check_node(cls, values: dict, node: Optional[str] = None) -> dict:
    """Check a node's widget values (absent or None = connected or not given); returns them converted.

    ``node`` names the node in messages (default: its class name). Raises :class:`InputError`.
    """
    node = node or cls.__name__
    kinds = {name: (kind, options) for name, kind, options, _ in input_specs(cls)}
    converted = {}
    for name, value in values.items():
        if value is None or name not in kinds:
            continue
        kind, options = kinds[name]
        if not is_widget(kind, options) and kind not in ("INT", "FLOAT", "STRING", "BOOLEAN"):
            continue
        if isinstance(kind, (list, tuple)) and (options.get("video_upload") or options.get("image_upload")):
            converted[name] = value  # a file name or path: the file itself is checked where it is read
            continue
        converted[name] = coerce(node, name, kind, options, value)
    rule = RULES.get(cls.__name__)
    if rule is not None:
        rule(node, converted)
    _devices(node, converted)
    return converted


def _devices(node: str, v: dict) -> None:
    """The ``devices`` setting of the flow, sampler and decoder nodes: well formed, and Ray there if it asks for it."""
    devices = v.get("devices")
    if not isinstance(devices, str):
        return
    from ..pipeline.workers.executor import check_devices

    try:
        check_devices(devices, "devices")
    except ValueError as err:
        text = str(err)
        rest = text[len(f"devices={devices!r}"):].lstrip(": ") if text.startswith("devices=") else text
        cause, _, fix = rest.partition("; ") if "; " in rest else rest.rpartition(": ")
        raise InputError(node, "devices", devices, cause or rest, fix or "set it to 'local'") from None


def comfy_verdict(cls, **values) -> Any:
    """What ``VALIDATE_INPUTS`` returns to ComfyUI: True, or the one-line message."""
    try:
        check_node(cls, values, node=NODE_DISPLAY_NAME_MAPPINGS.get(cls.__name__, cls.__name__))
    except InputError as err:
        return str(err)
    return True


__all__ = ["InputError", "check_decode_tile", "check_node", "check_prefix", "coerce", "comfy_verdict", "input_specs",
           "is_widget", "parse_region", "parse_strengths", "unwritable"]
