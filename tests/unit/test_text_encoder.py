"""CLIP tokenizer rules and the OpenCLIP text tower (penultimate layer, causal attention, ln_final)."""
import importlib.util
import json

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from mgld_vsr.models import clip_tokenizer as ct
from mgld_vsr.models.loader import load_component
from mgld_vsr.models.text_encoder import OpenCLIPTextEncoder, TextEncoderConfig
from needs import need_file, need_module

EMPTY_ROW = [ct.START_ID, ct.END_ID] + [0] * 75
CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 267, 1400, 3027, 49407]  # README 6.1, from open_clip itself


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


# --------------------------------------------------------------------------------------------- tokenizer

@pytest.fixture
def no_vocabulary(monkeypatch):
    """Pretend no package ships the CLIP vocabulary."""
    monkeypatch.setattr(ct, "find_vocabulary", lambda: None)


def _fake_vocabulary(path, merges):
    """A well-formed merge list: the given merges first, then unique filler merges up to CLIP's count."""
    fillers = [(f"\u0100{i}", "\u0101") for i in range(ct.NUM_MERGES - len(merges))]
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in [*merges, *fillers]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_empty_prompt_needs_no_vocabulary(no_vocabulary):
    ids = ct.tokenize(["", "   ", "\n\t"])
    assert ids.dtype == torch.long and ids.shape == (3, 77)
    for row in ids.tolist():
        assert row == EMPTY_ROW


def test_other_prompts_without_vocabulary_say_what_to_install(no_vocabulary):
    with pytest.raises(ct.VocabularyNotFoundError, match="open_clip_torch"):
        ct.tokenize(["a cat"])


def test_bpe_merges_padding_and_truncation_with_a_small_vocabulary(tmp_path):
    # rank 0 merges "h"+"i</w>", rank 1 "c"+"a", rank 2 "ca"+"t</w>"; "x" gets no merge.
    vocab = _fake_vocabulary(tmp_path / "merges.txt", [("h", "i</w>"), ("c", "a"), ("ca", "t</w>")])
    bpe = ct.ClipBPE.from_file(str(vocab))
    hi, cat = 256 + 256, 256 + 256 + 2
    x_final = 256 + [c for _, c in ct.byte_symbols()].index("x")
    ids = ct.tokenize(["Hi  CAT x", "hi " * 100], vocab_path=vocab)
    assert ids[0, :5].tolist() == [ct.START_ID, hi, cat, x_final, ct.END_ID]
    assert (ids[0, 5:] == ct.PAD_ID).all()  # padded with 0, not with the end id
    long_row = ids[1].tolist()
    assert long_row[0] == ct.START_ID and long_row[-1] == ct.END_ID
    assert long_row[1:-1] == [hi] * 75  # cut to 77 keeping the end id last
    assert bpe.encode("<end_of_text>") == [ct.END_ID]


def test_context_length_option(no_vocabulary):
    assert ct.tokenize([""], context_length=5).tolist() == [[ct.START_ID, ct.END_ID, 0, 0, 0]]
    with pytest.raises(ValueError):
        ct.tokenize([""], context_length=1)


def test_split_words_follows_clip_pattern():
    assert ct.split_words("it's a cat's 3d-model!! 12 <start_of_text>x") == [
        "it", "'s", "a", "cat", "'s", "3", "d", "-", "model", "!!", "1", "2", "<start_of_text>", "x"]
    regex = need_module("regex")
    pattern = regex.compile(r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
                            regex.IGNORECASE)
    for text in ["caf\u00e9 na\u00efve \u00bd \u2164 \u4e2d\u6587", "''s ''' 'd 'x", "a\x1cb \x1d! c\x85d \u3000e",
                 "emoji\U0001F600\U0001F408 \u0627\u0644\u0639\u0631\u0628\u064a\u0629"]:
        assert ct.split_words(text) == pattern.findall(text)


OPEN_CLIP_HINT = "install it without its dependencies: pip install --no-deps open_clip_torch (bash tests/run.sh does)"


def test_real_vocabulary_reproduces_open_clip_ids():
    if ct.find_vocabulary() is None:
        pytest.fail(f"no CLIP vocabulary installed (open_clip_torch's BPE file): {OPEN_CLIP_HINT}", pytrace=False)
    ids = ct.tokenize(["", "a photo of a cat, high quality", "word " * 90])
    assert ids[0].tolist() == EMPTY_ROW
    assert ids[1, :10].tolist() == CAT_IDS and (ids[1, 10:] == 0).all()
    assert ids[2, -1] == ct.END_ID and (ids[2] != 0).all()


def _open_clip_tokenize():
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"the package 'open_clip' (open_clip_torch) is missing: {OPEN_CLIP_HINT}", pytrace=False)
    need_module("ftfy")
    need_module("regex")
    path = need_file(f"{spec.submodule_search_locations[0]}/tokenizer.py", "open_clip's tokenizer.py", OPEN_CLIP_HINT)
    module_spec = importlib.util.spec_from_file_location("_open_clip_tokenizer_only", str(path))
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.tokenize


def test_matches_open_clip_tokenizer_on_tricky_text():
    reference = _open_clip_tokenize()
    prompts = ["  Hello   WORLD!!  it's I'LL we'd", "&amp;lt;b&amp;gt; \u201cquoted\u201d \ufb01ne \uff21\uff22 3.14",
               "\U0001F600 \u4e2d\u6587 na\u00efve \u0301a", "x" * 300, "a, b; c: d... e?!"]
    assert torch.equal(ct.tokenize(prompts), reference(prompts))


# --------------------------------------------------------------------------------------------- text tower

def _tiny(layers=3, width=32, heads=2, vocab=50, seed=0) -> OpenCLIPTextEncoder:
    torch.manual_seed(seed)
    model = OpenCLIPTextEncoder(TextEncoderConfig(vocab_size=vocab, width=width, layers=layers, heads=heads,
                                                  mlp_width=4 * width))
    with torch.no_grad():  # non-trivial LayerNorm affines and biases, like the fixture weights
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if "ln_" in name and name.endswith("weight") else 0.0))
    return model.eval()


def _reference(model: OpenCLIPTextEncoder, tokens, blocks_to_run):
    """Independent path: torch.nn.MultiheadAttention with an additive -inf causal mask, sequence-first."""
    cfg = model.config
    x = (model.token_embedding.weight[tokens] + model.positional_embedding).permute(1, 0, 2)
    mask = torch.full((cfg.context_length, cfg.context_length), float("-inf")).triu(1)
    for block in list(model.transformer.resblocks)[:blocks_to_run]:
        mha = nn.MultiheadAttention(cfg.width, cfg.heads)
        mha.load_state_dict({"in_proj_weight": block.attn.in_proj_weight, "in_proj_bias": block.attn.in_proj_bias,
                             "out_proj.weight": block.attn.out_proj.weight, "out_proj.bias": block.attn.out_proj.bias})
        h = block.ln_1(x)
        x = x + mha(h, h, h, need_weights=False, attn_mask=mask)[0]
        h = block.ln_2(x)
        x = x + block.mlp.c_proj(nn.functional.gelu(block.mlp.c_fc(h)))
    return model.ln_final(x.permute(1, 0, 2))


def _tokens(n=2, vocab=50, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (n, 77), generator=g)


@torch.no_grad()
def test_penultimate_and_last_match_independent_multihead_attention():
    model, tokens = _tiny(), _tokens()
    penultimate = model.encode(tokens)
    assert penultimate.shape == (2, 77, 32)
    torch.testing.assert_close(penultimate, _reference(model, tokens, 2), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.encode(tokens, layer="last"), _reference(model, tokens, 3), rtol=1e-5, atol=1e-5)
    assert (penultimate - model.encode(tokens, layer="last")).abs().max() > 1e-2


@torch.no_grad()
def test_last_block_is_unused_at_the_penultimate_layer():
    model, tokens = _tiny(), _tokens()
    before = model.encode(tokens)
    last_before = model.encode(tokens, layer="last")
    for p in model.transformer.resblocks[-1].parameters():
        p.add_(1.0)
    assert torch.equal(model.encode(tokens), before)
    assert not torch.allclose(model.encode(tokens, layer="last"), last_before)


@torch.no_grad()
def test_attention_is_causal():
    model, tokens = _tiny(), _tokens(n=1)
    changed = tokens.clone()
    changed[0, 40] = (changed[0, 40] + 1) % 50
    a, b = model.encode(tokens), model.encode(changed)
    assert torch.equal(a[:, :40], b[:, :40])  # earlier positions never see later tokens
    assert (a[:, 40:] - b[:, 40:]).abs().amax(dim=-1).min() > 1e-4  # every later position does


@torch.no_grad()
def test_rows_are_independent_and_inputs_checked():
    model, tokens = _tiny(), _tokens(n=3)
    torch.testing.assert_close(model.encode(tokens)[1:2], model.encode(tokens[1:2]), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError):
        model.encode(tokens[:, :76])
    with pytest.raises(ValueError):
        model.encode(tokens.float())
    with pytest.raises(ValueError):
        model.encode(tokens, layer="pooled")


@torch.no_grad()
def test_bf16_close_to_fp32():
    model, tokens = _tiny(), _tokens()
    ref = model.encode(tokens)
    low = model.to(torch.bfloat16).encode(tokens)
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().max() / ref.abs().max() < 5e-2


def test_official_config_builds_on_meta_without_ignored_keys():
    with torch.device("meta"):
        model = OpenCLIPTextEncoder(TextEncoderConfig.official())
    sd = model.state_dict()
    assert len(sd) == 294 - 2  # the checkpoint's 294 keys minus text_projection and logit_scale
    assert tuple(sd["token_embedding.weight"].shape) == (49408, 1024)
    assert tuple(sd["transformer.resblocks.23.mlp.c_fc.weight"].shape) == (4096, 1024)
    assert model.config.heads == 16 and not any(k.startswith(("text_projection", "logit_scale")) for k in sd)


def test_config_from_state_dict_and_hints():
    sd = _tiny(layers=4, width=128, heads=2).state_dict()
    cfg = TextEncoderConfig.from_state_dict(sd, {})
    assert (cfg.width, cfg.layers, cfg.heads, cfg.vocab_size, cfg.context_length, cfg.mlp_width) == (128, 4, 2, 50, 77, 512)
    assert TextEncoderConfig.from_state_dict(sd, {"heads": 4}).heads == 4
    assert TextEncoderConfig.from_state_dict(sd, {"config": json.dumps({"heads": 8})}).heads == 8
    assert TextEncoderConfig.from_state_dict(sd, {"layer": "last"}).layer == "last"
    with pytest.raises(ValueError, match="heads"):
        TextEncoderConfig.from_state_dict(sd, {"heads": 3})
    broken = {k: v for k, v in sd.items() if k != "positional_embedding"}
    with pytest.raises(ValueError, match="positional_embedding"):
        TextEncoderConfig.from_state_dict(broken, {})
    gap = {k: v for k, v in sd.items() if not k.startswith("transformer.resblocks.1.")}
    with pytest.raises(ValueError, match="resblocks"):
        TextEncoderConfig.from_state_dict(gap, {})


@torch.no_grad()
def test_loads_official_key_layout_with_heads_from_metadata(tmp_path):
    model, tokens = _tiny(heads=4), _tokens()
    prefix = "cond_stage_model.model."
    tensors = {prefix + k: v.contiguous() for k, v in model.state_dict().items()}
    tensors[prefix + "text_projection"] = torch.randn(32, 32)
    tensors[prefix + "logit_scale"] = torch.tensor(4.6)
    path = tmp_path / "text.safetensors"
    save_file(tensors, str(path), metadata={"config": json.dumps({"heads": 4, "width": 32})})
    loaded = load_component(path, "text_encoder")
    assert loaded.config.heads == 4
    assert torch.equal(loaded.encode(tokens), model.encode(tokens))
