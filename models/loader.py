"""Map official checkpoint files onto our modules, with plain-words reports of anything that does not fit.

Each component names the key prefixes it has in the official files, the keys it ignores on
purpose, and its config/module classes. Architectures are inferred from tensor shapes; the few
values shapes cannot tell (attention head sizes, frames per window) come from "hints": the
official YAML beside the file (or named in its metadata), our converted files' metadata, or the
official defaults. Modules are built on the ``meta`` device and filled by assignment, so loading
costs no random initialisation.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
from typing import Iterable

import torch
from torch import nn

from .checkpoint import CheckpointError, read_state_dict


@dataclasses.dataclass(frozen=True)
class Component:
    title: str  # how users know it
    file_hint: str  # which official file carries it
    prefixes: tuple[str, ...]  # official key prefixes, in order of preference
    module: str  # module of this package (relative name)
    config_class: str
    model_class: str
    ignored: tuple[str, ...] = ()  # relative key prefixes present in official files but unused by inference
    yaml_section: tuple[str, ...] = ()  # where its hints sit in the official YAML


COMPONENTS: dict[str, Component] = {
    "unet": Component("MGLD diffusion UNet", "mgldvsr_unet.ckpt", ("model.diffusion_model.",), "unet", "UNetConfig",
                      "MGLDUNet", yaml_section=("model", "params", "unet_config", "params")),
    "lr_encoder": Component("time-aware LR encoder", "mgldvsr_unet.ckpt", ("structcond_stage_model.",), "lr_encoder",
                            "LREncoderConfig", "TimeAwareLREncoder",
                            yaml_section=("model", "params", "structcond_stage_config", "params")),
    "first_stage": Component("SD VAE encoder (first stage)", "mgldvsr_unet.ckpt", ("first_stage_model.",), "vae",
                             "VAEConfig", "FirstStageEncoder", ignored=("decoder.", "post_quant_conv.", "loss."),
                             yaml_section=("model", "params", "first_stage_config", "params", "ddconfig")),
    "text_encoder": Component("OpenCLIP text encoder", "mgldvsr_unet.ckpt", ("cond_stage_model.model.",), "text_encoder",
                              "TextEncoderConfig", "OpenCLIPTextEncoder", ignored=("text_projection", "logit_scale")),
    "raft": Component("RAFT optical flow", "raft-things.pth", ("module.", "flownet_model."), "raft",
                      "RAFTConfig", "RAFT"),
    "video_vae": Component("temporal CFW video VAE", "video_vae_cfw.ckpt", ("",), "video_vae", "VideoVAEConfig",
                           "TemporalCFWVideoVAE", ignored=("loss.",),
                           yaml_section=("model", "params", "ddconfig")),
}

# Keys of mgldvsr_unet.ckpt that belong to no inference component: DDPM schedule buffers the
# sampler recomputes exactly (pipeline/sampling/schedule.py) and the EMA bookkeeping of training.
IGNORED_TOP_LEVEL = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
    "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "lvlb_weights", "model_ema.", "loss.",
)


def component_classes(name: str):
    comp = COMPONENTS[name]
    module = importlib.import_module(f"{__package__}.{comp.module}")
    return getattr(module, comp.config_class), getattr(module, comp.model_class)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class WeightFile:
    """A weight file read once: official keys, its metadata and the hints found for it."""

    path: str
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    yaml: dict | None
    yaml_path: str | None = None  # where ``yaml`` came from (for messages)

    @classmethod
    def read(cls, path: str | os.PathLike, config_path: str | os.PathLike | None = None) -> "WeightFile":
        path = os.fspath(path)
        tensors, metadata = read_state_dict(path)
        yaml_path = _yaml_path(path, metadata, config_path)
        return cls(path, tensors, metadata, _read_yaml(yaml_path) if yaml_path else None, yaml_path)

    def component_state(self, name: str) -> tuple[dict[str, torch.Tensor], str]:
        """Keys of component ``name`` with the official prefix stripped, and the prefix used."""
        comp = COMPONENTS[name]
        stored = self.metadata.get("mgld_component")
        if stored is not None:  # our converted per-component files: keys are stored relative
            if stored != name:
                raise CheckpointError(f"{self.path}: this file holds the {COMPONENTS.get(stored, comp).title} "
                                      f"('{stored}'), not the {comp.title}")
            return dict(self.tensors), ""
        for prefix in comp.prefixes:
            if prefix == "":
                if name == "video_vae" and _looks_like_video_vae(self.tensors):
                    return dict(self.tensors), ""
                continue
            sub = {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}
            if sub:
                return sub, prefix
        raise CheckpointError(
            f"{self.path}: no {comp.title} weights in this file (expected keys starting with "
            f"{' or '.join(repr(p) for p in comp.prefixes if p) or 'encoder./decoder.'}); {describe_contents(self.tensors)}. "
            f"The {comp.title} comes from {comp.file_hint}."
        )

    def hints(self, name: str) -> dict:
        comp = COMPONENTS[name]
        hints: dict = {}
        if self.yaml is not None and comp.yaml_section:
            section = self.yaml
            for part in comp.yaml_section:
                section = section.get(part, {}) if isinstance(section, dict) else {}
            hints.update(section if isinstance(section, dict) else {})
        for key in ("mgld_config", "config"):
            raw = self.metadata.get(key)
            if raw and raw.strip().startswith("{"):
                try:
                    config = json.loads(raw)
                except ValueError as exc:
                    config = exc
                if not isinstance(config, dict):  # a damaged header must not fall back to defaults unsaid
                    raise CheckpointError(
                        f"{self.path}: the architecture config in the file header ('{key}') is damaged ({config}); "
                        f"convert the official file again with run_workflow.py convert-weights")
                hints.update(config)
        return hints

    def hint_source(self) -> str:
        """Where values the tensor shapes cannot tell come from, and how to supply them (for errors)."""
        if self.yaml_path:
            return f"they were read from {self.yaml_path}: check that it is the config of this checkpoint"
        if any(k in self.metadata for k in ("mgld_config", "config")):
            return "they were read from the file header"
        stem = os.path.splitext(os.path.basename(self.path))[0]
        return (f"the official defaults were used, as no config was found: put the official-format YAML of this "
                f"checkpoint beside it as {stem}.yaml")


def _looks_like_video_vae(tensors: dict) -> bool:
    return any(k.startswith("decoder.fusion_layer_") for k in tensors) and any(k.startswith("encoder.") for k in tensors)


def describe_contents(tensors: dict) -> str:
    """A short guess at what a file holds, for error messages."""
    keys = list(tensors)
    found = [title for title, probe in (
        ("the MGLD diffusion checkpoint (mgldvsr_unet.ckpt)", lambda k: k.startswith("model.diffusion_model.")),
        ("the temporal CFW video VAE (video_vae_cfw.ckpt)", lambda k: k.startswith("decoder.fusion_layer_")),
        ("RAFT (raft-things.pth)", lambda k: k.startswith(("module.fnet.", "fnet."))),
        ("an OpenCLIP text encoder", lambda k: k.startswith("cond_stage_model.")),
    ) if any(probe(k) for k in keys)]
    if found:
        return "it looks like " + " and ".join(found)
    sample = ", ".join(keys[:3])
    return f"it holds {len(keys)} tensors of an unknown model (first keys: {sample})"


def _yaml_path(path: str, metadata: dict, config_path) -> str | None:
    """The official-format YAML for ``path``: given, named in its metadata, or beside it with the same name."""
    candidates = []
    if config_path:
        candidates.append(os.fspath(config_path))
    named = metadata.get("config", "")
    if named.endswith((".yaml", ".yml")):
        candidates.append(os.path.join(os.path.dirname(path), named))
    stem = os.path.splitext(path)[0]
    candidates += [stem + ".yaml", stem + ".yml"]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    if config_path:
        raise CheckpointError(f"{config_path}: config file not found")
    return None


def _read_yaml(path: str) -> dict:
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            document = yaml.safe_load(fh)
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not a valid YAML config ({str(exc).splitlines()[0]}); fix or remove it") from exc
    if not isinstance(document, dict):
        raise CheckpointError(f"{path}: not an official-format YAML config (it holds a {type(document).__name__}); "
                              f"fix or remove it")
    return document


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------

def build_empty(name: str, config) -> nn.Module:
    """The module for ``config`` with storage-free (meta) parameters."""
    _, model_class = component_classes(name)
    with torch.device("meta"):
        return model_class(config)


def official_config(name: str):
    config_class, _ = component_classes(name)
    return config_class.official()


def load_from_file(weights: WeightFile, name: str, dtype: torch.dtype = torch.float32,
                   device: torch.device | str = "cpu") -> nn.Module:
    comp = COMPONENTS[name]
    sd, prefix = weights.component_state(name)
    config_class, _ = component_classes(name)
    try:
        config = config_class.from_state_dict(sd, weights.hints(name))
        model = build_empty(name, config)
    except (ValueError, KeyError, ZeroDivisionError) as exc:
        hint = f"; for values the shapes cannot tell (attention head width, frames per window) {weights.hint_source()}"
        raise CheckpointError(f"{weights.path}: the {comp.title} weights do not fit its architecture: {exc}"
                              f"{hint if comp.yaml_section else ''}") from exc
    expected = model.state_dict()
    ignored = [k for k in sd if k.startswith(comp.ignored) and k not in expected] if comp.ignored else []
    provided = {k: v for k, v in sd.items() if k not in ignored}
    check_keys(weights.path, comp.title, prefix, expected, provided)
    model.load_state_dict(provided, strict=True, assign=True)
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise CheckpointError(f"{weights.path}: {comp.title}: tensors left without values: {leftover[:5]}")
    model = model.to(device=device, dtype=dtype)
    model.eval().requires_grad_(False)
    model.source_path = weights.path
    return model


def check_keys(path: str, title: str, prefix: str, expected: dict, provided: dict) -> None:
    missing = [k for k in expected if k not in provided]
    unexpected = [k for k in provided if k not in expected]
    wrong = [f"{prefix}{k}: file {tuple(provided[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in expected if k in provided and tuple(provided[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or wrong):
        return
    lines = [f"{path}: the {title} weights do not match the model:"]
    for label, keys in (("missing", [prefix + k for k in missing]), ("unexpected", [prefix + k for k in unexpected]),
                        ("wrong shape", wrong)):
        if keys:
            more = f" … and {len(keys) - 8} more" if len(keys) > 8 else ""
            lines.append(f"  {len(keys)} {label} key(s): " + ", ".join(keys[:8]) + more)
    lines.append("  The file may be truncated, from a different model, or given to the wrong loader slot.")
    raise CheckpointError("\n".join(lines))


def load_component(path: str | os.PathLike, name: str, dtype: torch.dtype = torch.float32,
                   device: torch.device | str = "cpu", config_path: str | os.PathLike | None = None) -> nn.Module:
    """Load one component (``unet``, ``lr_encoder``, ``first_stage``, ``text_encoder``, ``raft``, ``video_vae``)."""
    if name not in COMPONENTS:
        raise ValueError(f"unknown component {name!r}; choose from {sorted(COMPONENTS)}")
    return load_from_file(WeightFile.read(path, config_path), name, dtype, device)


def load_components(path: str | os.PathLike, names: Iterable[str], dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu", config_path=None, optional: Iterable[str] = (),
                    dtypes: dict[str, torch.dtype] | None = None) -> dict[str, nn.Module]:
    """Several components from one file, reading it once. Components in ``optional`` are skipped if absent;
    ``dtypes`` overrides ``dtype`` for the components it names."""
    weights = WeightFile.read(path, config_path)
    optional, out = set(optional), {}
    for name in names:
        try:
            out[name] = load_from_file(weights, name, (dtypes or {}).get(name, dtype), device)
        except CheckpointError:
            if name in optional and not any(k.startswith(p) for p in COMPONENTS[name].prefixes if p for k in weights.tensors):
                continue
            raise
    return out


def classify_keys(keys: Iterable[str]) -> dict[str, list[str]]:
    """Sort official keys into components, ``ignored`` (unused by inference on purpose) and ``unknown``."""
    out: dict[str, list[str]] = {name: [] for name in COMPONENTS}
    out["ignored"], out["unknown"] = [], []
    for key in keys:
        if key.startswith(IGNORED_TOP_LEVEL):
            out["ignored"].append(key)
            continue
        for name, comp in COMPONENTS.items():
            prefix = next((p for p in comp.prefixes if p and key.startswith(p)), None)
            if prefix is None and name == "video_vae" and key.startswith(("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")):
                prefix = ""
            if prefix is not None:
                relative = key[len(prefix):]
                out["ignored" if comp.ignored and relative.startswith(comp.ignored) else name].append(key)
                break
        else:
            out["unknown"].append(key)
    return out
