"""The CLIP byte-level BPE tokenizer that feeds MGLD-VSR's OpenCLIP text tower.

Reproduces ``open_clip.tokenize`` (the official embedder's tokenizer): cleaned, lower-cased text is
split into words, each word's UTF-8 bytes are merged by the CLIP BPE ranks, and every row becomes
``[start] + ids + [end]`` padded with id 0 to 77 ids (too long rows are cut, keeping the end id).

The empty prompt, the only one the official inference script uses, needs no vocabulary. Other
prompts need the merge list shipped by an installed package (never downloaded): open_clip_torch's
``bpe_simple_vocab_16e6.txt.gz`` or ComfyUI's ``comfy/sd1_tokenizer/merges.txt``. Neither package is
imported; only its files are read.
"""
from __future__ import annotations

import functools
import gzip
import html
import importlib.util
import os
import unicodedata

import torch

START_ID = 49406
END_ID = 49407
PAD_ID = 0
CONTEXT_LENGTH = 77
#: Merges used by CLIP: 49408 ids = 256 bytes + 256 word-final bytes + 48894 merges + 2 specials.
NUM_MERGES = 49152 - 256 - 2
#: Texts that the official pattern keeps whole and maps to the special ids.
SPECIAL_WORDS = {"<start_of_text>": START_ID, "<end_of_text>": END_ID}
_CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")

_INSTALL_HINT = (
    "install the CLIP vocabulary with `pip install --no-deps open_clip_torch` (only its "
    "bpe_simple_vocab_16e6.txt.gz file is read), run inside ComfyUI (comfy/sd1_tokenizer/merges.txt), "
    "or pass vocab_path= pointing at either file"
)


class VocabularyNotFoundError(RuntimeError):
    """A non-empty prompt was given but no CLIP BPE merge list could be found."""


def tokenize(prompts: list[str] | str, context_length: int = CONTEXT_LENGTH,
             vocab_path: str | os.PathLike | None = None) -> torch.Tensor:
    """Token ids ``LongTensor[N, context_length]``, one row per prompt, as ``open_clip.tokenize``."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if context_length < 2:
        raise ValueError(f"context_length must be at least 2 (start and end ids), got {context_length}")
    rows = []
    for prompt in prompts:
        if not isinstance(prompt, str):
            raise TypeError(f"prompts must be strings, got {type(prompt).__name__}")
        text = clean_text(prompt)
        ids = _bpe_for(vocab_path).encode(text) if text else []
        row = [START_ID, *ids, END_ID]
        if len(row) > context_length:
            row = row[:context_length]
            row[-1] = END_ID
        rows.append(row + [PAD_ID] * (context_length - len(row)))
    return torch.tensor(rows, dtype=torch.long).reshape(len(rows), context_length)


def clean_text(text: str) -> str:
    """ftfy repair (when installed), double HTML unescape, whitespace collapse, lower case."""
    fix_text = _ftfy_fix_text()
    if fix_text is not None:
        text = fix_text(text)
    text = html.unescape(html.unescape(text))
    return " ".join(text.split()).lower()


@functools.lru_cache(maxsize=1)
def _ftfy_fix_text():
    try:
        import ftfy
    except ImportError:
        return None
    return ftfy.fix_text


def find_vocabulary() -> str | None:
    """Path of a CLIP merge list shipped by an installed package, or None. Nothing is imported."""
    candidates = [("open_clip", "bpe_simple_vocab_16e6.txt.gz"), ("comfy", os.path.join("sd1_tokenizer", "merges.txt"))]
    for package, relative in candidates:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        locations = list(spec.submodule_search_locations or []) if spec else []
        for folder in locations:
            path = os.path.join(folder, relative)
            if os.path.isfile(path):
                return path
    return None


def _bpe_for(vocab_path) -> "ClipBPE":
    path = os.fspath(vocab_path) if vocab_path is not None else find_vocabulary()
    if path is None:
        raise VocabularyNotFoundError(f"non-empty prompts need the CLIP BPE vocabulary: {_INSTALL_HINT}")
    return _load_bpe(os.path.abspath(path))


@functools.lru_cache(maxsize=4)
def _load_bpe(path: str) -> "ClipBPE":
    return ClipBPE.from_file(path)


@functools.lru_cache(maxsize=1)
def byte_symbols() -> list[str]:
    """One printable character per byte value, in CLIP's vocabulary order: ``[(byte, char), ...]``.

    Bytes that are already visible Latin-1 characters stand for themselves; the others (controls,
    space, soft hyphen...) are given the characters 256, 257, ... so no symbol is whitespace.
    """
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shown = set(visible)
    hidden = [b for b in range(256) if b not in shown]
    return [(b, chr(b)) for b in visible] + [(b, chr(256 + n)) for n, b in enumerate(hidden)]


class ClipBPE:
    """Merge ranks and symbol ids of the CLIP vocabulary."""

    def __init__(self, merges: list[tuple[str, str]]):
        if len(merges) < NUM_MERGES:
            raise ValueError(f"the CLIP vocabulary needs {NUM_MERGES} merges, the file has {len(merges)}")
        merges = merges[:NUM_MERGES]
        symbols = [char for _, char in byte_symbols()]
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
        self.ids = {symbol: i for i, symbol in enumerate(vocab)}
        if len(self.ids) != len(vocab):
            raise ValueError("the CLIP merge list produces duplicate symbols; it is not a CLIP vocabulary")
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.byte_char = {b: char for b, char in byte_symbols()}
        self._word_ids = functools.lru_cache(maxsize=65536)(self._word_ids_uncached)

    @classmethod
    def from_file(cls, path: str) -> "ClipBPE":
        """Read open_clip's gzipped list or a HF/ComfyUI ``merges.txt``; both start with a header line."""
        try:
            if path.endswith(".gz"):
                with gzip.open(path, "rt", encoding="utf-8") as f:
                    lines = f.read().split("\n")
            else:
                with open(path, encoding="utf-8") as f:
                    lines = f.read().split("\n")
        except (OSError, UnicodeDecodeError, EOFError) as exc:
            raise VocabularyNotFoundError(f"{path}: cannot read the CLIP vocabulary ({exc}); {_INSTALL_HINT}") from exc
        merges = []
        for line in lines[1:NUM_MERGES + 1]:
            parts = line.split()
            if len(parts) != 2:
                raise VocabularyNotFoundError(f"{path}: line {line!r} is not a BPE merge; {_INSTALL_HINT}")
            merges.append((parts[0], parts[1]))
        return cls(merges)

    def encode(self, text: str) -> list[int]:
        """Ids of already cleaned text (no start/end ids)."""
        out = []
        for word in split_words(text):
            if word in SPECIAL_WORDS:
                out.append(SPECIAL_WORDS[word])
            else:
                out.extend(self._word_ids("".join(self.byte_char[b] for b in word.encode("utf-8"))))
        return out

    def _word_ids_uncached(self, word: str) -> tuple[int, ...]:
        """Greedy BPE: repeatedly merge every occurrence of the best-ranked adjacent pair."""
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = {(a, b) for a, b in zip(parts, parts[1:])}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == best[0] and parts[i + 1] == best[1]:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return tuple(self.ids[p] for p in parts)


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "L"


def _is_number(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "N"


def _is_space(ch: str) -> bool:
    """Unicode White_Space, as the official pattern's ``\\s`` (str.isspace also accepts U+001C..U+001F)."""
    return ch.isspace() and not "\x1c" <= ch <= "\x1f"


def split_words(text: str) -> list[str]:
    """CLIP's pre-tokenisation, tried in order at each position: a special word, an English
    contraction, a run of letters, one digit/number character, or a run of other non-space symbols;
    whitespace separates and is dropped."""
    words, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        special = next((w for w in SPECIAL_WORDS if text.startswith(w, i)), None)
        contraction = next((c for c in _CONTRACTIONS if text.startswith(c, i)), None) if ch == "'" else None
        if special or contraction:
            word = special or contraction
        elif _is_letter(ch):
            j = i + 1
            while j < n and _is_letter(text[j]):
                j += 1
            word = text[i:j]
        elif _is_number(ch):
            word = ch
        elif _is_space(ch):
            i += 1
            continue
        else:
            j = i + 1
            while j < n and not (_is_space(text[j]) or _is_letter(text[j]) or _is_number(text[j])):
                j += 1
            word = text[i:j]
        words.append(word)
        i += len(word)
    return words
