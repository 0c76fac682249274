"""``text_encoder``: CLIP tokenizer ids and the OpenCLIP text tower's context (README 6.1)."""
from __future__ import annotations

import torch
from golden_lib import Check
from weights_index import weights_file_with_prefix

from mgld_vsr.models.clip_tokenizer import VocabularyNotFoundError, tokenize
from mgld_vsr.models.loader import load_component

#: README section 8: single-module outputs rel <= 1e-4; token ids must be identical.
REL = 1e-4


def _our_tokens(prompts: list[str], stored: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Our ids per prompt; rows that need a vocabulary nobody installed fall back to the stored ids."""
    rows, ours = [], []
    for i, prompt in enumerate(prompts):
        try:
            rows.append(tokenize([prompt], context_length=stored.shape[1])[0])
            ours.append(i)
        except VocabularyNotFoundError:
            rows.append(stored[i])
    return torch.stack(rows), ours


def run(fixture) -> list[Check]:
    stored_tokens = fixture["tokens"]
    prompts = fixture.meta("prompts")
    checks = []
    if prompts is None:
        tokens = stored_tokens
    else:
        if len(prompts) != stored_tokens.shape[0]:
            raise ValueError(f"{len(prompts)} prompts but {stored_tokens.shape[0]} token rows")
        tokens, ours = _our_tokens(list(prompts), stored_tokens)
        if ours:
            label = "tokens" if len(ours) == len(prompts) else f"tokens(rows {ours}; no vocabulary for the others)"
            checks.append(Check(label, tokens[ours], stored_tokens[ours], exact=True))

    model = load_component(weights_file_with_prefix(fixture.weights_dir, "cond_stage_model.model."), "text_encoder")
    layer = fixture.meta("layer", "penultimate")
    checks.append(Check("context", model.encode(tokens, layer=layer), fixture["context"], rel=REL))
    if "debug.context_layer_last" in fixture.tensors:
        checks.append(Check("debug.context_layer_last", model.encode(tokens, layer="last"),
                            fixture["debug.context_layer_last"], rel=REL))
    if "debug.x0" in fixture.tensors:
        x0 = model.token_embedding(tokens) + model.positional_embedding
        checks.append(Check("debug.x0", x0, fixture["debug.x0"], rel=REL))
    return checks
