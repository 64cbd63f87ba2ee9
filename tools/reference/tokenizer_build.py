"""Deterministic Gemma-style BPE tokenizer for the tiny test checkpoints.

The `tokenizers` BPE trainer breaks ties differently from run to run, so this module trains
its own small BPE (ties broken by string order) and writes a `tokenizer.json` shaped like
the ones transformers produces for Gemma (GemmaConverter): BPE model with byte fallback,
normalizer " " -> "▁", no prefix space, merges generated from the vocabulary the way
transformers does for SentencePiece BPE models (every split of a piece whose halves are
pieces, ranked by the piece's id), so HF's merge-rank BPE and llama.cpp's score-ordered
SentencePiece BPE (score = -id) agree.

Vocabulary layout (ids): control tokens (pad 0, eos 1, bos 2, unk 3, mask 4, turn markers),
user-defined tokens, 256 byte tokens <0x00>..<0xFF>, merged pieces in training order,
single characters (most frequent first). Like SentencePiece, characters come last.
"""

from __future__ import annotations

import heapq
import json
import unicodedata
from collections import Counter

SPACE = "\u2581"  # ▁

# Two layouts so a converter must look turn markers up by text (as for real Gemma 1/2 vs 3).
SPECIALS = {
    "gemma": ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>", "<unused0>"],
    "gemma3": ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<unused0>", "<start_of_turn>", "<end_of_turn>"],
}
# Not special: matched on the raw text before normalisation (llama.cpp USER_DEFINED).
USER_DEFINED = ["<h1>", "</h1>", "<br>"]
NUM_BYTES = 256
# A character becomes a piece only if it occurs this often; rarer ones use byte fallback.
MIN_CHAR_COUNT = 3


def _char_class(ch: str) -> str:
    if ch == SPACE:
        return "space"
    if ch == "\n":
        return "newline"
    if ch == "\t":
        return "tab"
    cat = unicodedata.category(ch)
    if cat.startswith("N"):
        return "digit"
    if cat.startswith("L") or cat.startswith("M"):
        name = unicodedata.name(ch, "UNKNOWN")
        return "letter:" + name.split(" ")[0]
    return "punct"


def _words(text: str) -> list[str]:
    """Split normalised text into training words (SentencePiece-like rules).

    A run of ▁ followed by a letter/punctuation run gives its last ▁ to that run ("▁the");
    the remaining ▁s form a whitespace-only word. Digits are always single characters.
    Newline and tab runs are words of their own. Merges never cross word boundaries.
    """
    runs: list[tuple[str, str]] = []
    for ch in text:
        cls = _char_class(ch)
        if runs and runs[-1][0] == cls and cls != "digit":
            runs[-1] = (cls, runs[-1][1] + ch)
        else:
            runs.append((cls, ch))
    words: list[str] = []
    pending_space = ""
    for cls, run in runs:
        if cls == "space":
            pending_space += run
            continue
        if pending_space:
            if cls.startswith("letter") or cls == "punct":
                if len(pending_space) > 1:
                    words.append(pending_space[:-1])
                run = SPACE + run
            else:
                words.append(pending_space)
            pending_space = ""
        words.append(run)
    if pending_space:
        words.append(pending_space)
    return words


def _strip_added(text: str, tokens: list[str]) -> list[str]:
    """Cut the corpus at added tokens (they are atomic and never part of merges)."""
    parts = [text]
    for tok in sorted(tokens, key=len, reverse=True):
        parts = [p for part in parts for p in part.split(tok)]
    return parts


def train(corpus: str, num_merges: int) -> tuple[list[str], list[str]]:
    """Return (merged pieces in training order, character pieces most frequent first)."""
    added = sorted(set(SPECIALS["gemma"]) | set(SPECIALS["gemma3"])) + USER_DEFINED
    word_counts: Counter[str] = Counter()
    for part in _strip_added(corpus, added):
        for w in _words(part.replace(" ", SPACE)):
            word_counts[w] += 1
    char_counts: Counter[str] = Counter()
    for w, n in word_counts.items():
        for ch in w:
            char_counts[ch] += n
    chars = sorted((c for c, n in char_counts.items() if n >= MIN_CHAR_COUNT), key=lambda c: (-char_counts[c], c))
    charset = set(chars)

    # Each word is a list of symbols; characters below MIN_CHAR_COUNT break the word (they
    # become byte tokens at encode time, which can never merge with neighbours).
    words: list[tuple[list[str], int]] = []
    for w, n in sorted(word_counts.items()):
        seg: list[str] = []
        for ch in w:
            if ch in charset and _char_class(ch) != "digit":
                seg.append(ch)
            else:
                if len(seg) > 1:
                    words.append((seg, n))
                seg = []
        if len(seg) > 1:
            words.append((seg, n))

    merged: list[str] = []
    known = set(chars)
    for _ in range(num_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for syms, n in words:
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        # Deterministic choice: highest count, then lexicographically smallest pair.
        (a, b), count = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if count < 2:
            break
        new = a + b
        if new not in known:
            merged.append(new)
            known.add(new)
        for syms, _n in words:
            i = 0
            while i < len(syms) - 1:
                if syms[i] == a and syms[i + 1] == b:
                    syms[i : i + 2] = [new]
                i += 1
    return merged, chars


def vocab_list(layout: str, merged: list[str], chars: list[str]) -> list[str]:
    pieces = list(SPECIALS[layout]) + USER_DEFINED + [f"<0x{i:02X}>" for i in range(NUM_BYTES)]
    pieces += merged + chars
    assert len(set(pieces)) == len(pieces), "duplicate piece"
    return pieces


def generate_merges(vocab: dict[str, int]) -> list[tuple[str, str]]:
    """All (left, right) splits of every piece whose halves are pieces, ranked by the id of
    the piece, then by the lengths of left/right, then by their ids (transformers' rule for
    SentencePiece BPE models)."""
    out = []
    for piece, pid in vocab.items():
        local = []
        for i in range(1, len(piece)):
            left, right = piece[:i], piece[i:]
            if left in vocab and right in vocab:
                local.append((left, right, pid))
        local.sort(key=lambda x: (vocab[x[0]], vocab[x[1]]))
        out.extend(local)
    out.sort(key=lambda x: (x[2], len(x[0]), len(x[1])))
    return [(left, right) for left, right, _ in out]


def tokenizer_json(pieces: list[str], layout: str) -> dict:
    vocab = {p: i for i, p in enumerate(pieces)}
    # Control, user-defined and byte tokens never take part in merges.
    first_piece = len(SPECIALS[layout]) + len(USER_DEFINED) + NUM_BYTES
    merge_vocab = {p: i for p, i in vocab.items() if i >= first_piece}
    merges = [[left, right] for left, right in generate_merges(merge_vocab)]
    added = []
    for tok in SPECIALS[layout]:
        added.append(_added(vocab[tok], tok, special=True))
    for tok in USER_DEFINED:
        added.append(_added(vocab[tok], tok, special=False))
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": SPACE},
        "pre_tokenizer": {
            "type": "Split",
            "pattern": {"String": " "},
            "behavior": "MergedWithPrevious",
            "invert": False,
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "<bos>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": "<bos>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<bos>", "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {"<bos>": {"id": "<bos>", "ids": [vocab["<bos>"]], "tokens": ["<bos>"]}},
        },
        "decoder": {
            "type": "Sequence",
            "decoders": [
                {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
                {"type": "ByteFallback"},
                {"type": "Fuse"},
            ],
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }


def _added(idx: int, content: str, special: bool) -> dict:
    return {
        "id": idx,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": special,
    }


# Gemma-style chat template (written for this project): a leading system message is folded
# into the first user turn, assistant is rendered as "model", contents are trimmed.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% set msgs = messages %}{% set sys = '' %}"
    "{% if msgs and msgs[0]['role'] == 'system' %}"
    "{% set sys = msgs[0]['content'] | trim ~ '\n\n' %}{% set msgs = msgs[1:] %}"
    "{% endif %}"
    "{% for m in msgs %}"
    "{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "{{ '<start_of_turn>' ~ role ~ '\n' }}"
    "{% if loop.first %}{{ sys }}{% endif %}"
    "{{ m['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def tokenizer_config(layout: str, pieces: list[str]) -> dict:
    vocab = {p: i for i, p in enumerate(pieces)}
    decoder = {}
    for tok in SPECIALS[layout]:
        decoder[str(vocab[tok])] = _added_cfg(tok, special=True)
    for tok in USER_DEFINED:
        decoder[str(vocab[tok])] = _added_cfg(tok, special=False)
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": decoder,
        "bos_token": "<bos>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<eos>",
        "mask_token": "<mask>",
        "model_max_length": 8192,
        "pad_token": "<pad>",
        "padding_side": "left",
        "spaces_between_special_tokens": False,
        "tokenizer_class": "GemmaTokenizer",
        "unk_token": "<unk>",
    }


def _added_cfg(content: str, special: bool) -> dict:
    return {
        "content": content,
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
        "special": special,
    }


def dumps(obj: dict) -> str:
    """Stable JSON text (key order as built, UTF-8, trailing newline)."""
    return json.dumps(obj, ensure_ascii=False, indent=2) + "\n"


def spm_encode(pieces: list[str], types: list[str], text: str) -> list[int]:
    """llama.cpp's SentencePiece-BPE algorithm (llama-vocab.cpp `llm_tokenizer_spm`) with score = -id,
    parse_special = true, add_bos = true. Used only to check that the HF ids in the goldens
    are what a llama.cpp-style tokenizer produces from the same vocabulary."""
    vocab = {p: i for i, p in enumerate(pieces)}
    matchable = sorted(
        (p for p, t in zip(pieces, types) if t in ("control", "unknown", "user_defined")),
        key=len,
        reverse=True,
    )
    # 1. special-token partition (longest token first, leftmost occurrences)
    frags: list[tuple[str, object]] = [("text", text)]
    for tok in matchable:
        nxt: list[tuple[str, object]] = []
        for kind, val in frags:
            if kind != "text":
                nxt.append((kind, val))
                continue
            s = val
            while True:
                k = s.find(tok)
                if k < 0:
                    break
                if k:
                    nxt.append(("text", s[:k]))
                nxt.append(("id", vocab[tok]))
                s = s[k + len(tok) :]
            if s:
                nxt.append(("text", s))
        frags = nxt
    out = [vocab["<bos>"]]
    for kind, val in frags:
        if kind == "id":
            out.append(val)
        else:
            out.extend(_spm_fragment(vocab, val))
    return out


def _spm_fragment(vocab: dict[str, int], text: str) -> list[int]:
    """One raw-text fragment: spaces to U+2581, UTF-8 characters as symbols, best-scoring
    adjacent pair merged until none is in the vocabulary, byte fallback for what is left."""
    syms = list(text.replace(" ", SPACE))  # UTF-8 characters
    prev = list(range(-1, len(syms) - 1))
    nxt = list(range(1, len(syms) + 1))
    if nxt:
        nxt[-1] = -1
    heap: list = []
    rev: dict[str, tuple[str, str]] = {}

    def push(left: int, right: int) -> None:
        if left < 0 or right < 0:
            return
        joined = syms[left] + syms[right]
        if joined in vocab:
            # min-heap on (id, left index) = max score (-id), ties to the leftmost pair
            heapq.heappush(heap, (vocab[joined], left, right, len(joined)))
            rev[joined] = (syms[left], syms[right])

    for i in range(len(syms) - 1):
        push(i, i + 1)
    while heap:
        _score, left, right, size = heapq.heappop(heap)
        if not syms[left] or not syms[right] or len(syms[left]) + len(syms[right]) != size:
            continue  # stale
        syms[left] += syms[right]
        syms[right] = ""
        nxt[left] = nxt[right]
        if nxt[right] >= 0:
            prev[nxt[right]] = left
        push(prev[left], left)
        push(left, nxt[left])

    out: list[int] = []

    def emit(piece: str) -> None:
        if piece in vocab:
            out.append(vocab[piece])
        elif piece in rev:
            emit(rev[piece][0])
            emit(rev[piece][1])
        else:  # byte fallback
            out.extend(vocab[f"<0x{byte:02X}>"] for byte in piece.encode("utf-8"))

    for sym in syms:
        if sym:
            emit(sym)
    return out


def piece_types(pieces: list[str], layout: str) -> list[str]:
    """llama.cpp token types for the vocabulary (what a converter should write)."""
    out = []
    for p in pieces:
        if p == "<unk>":
            out.append("unknown")
        elif p in SPECIALS[layout]:
            out.append("control")
        elif p in USER_DEFINED:
            out.append("user_defined")
        elif len(p) == 6 and p.startswith("<0x") and p.endswith(">"):
            out.append("byte")
        else:
            out.append("normal")
    return out
