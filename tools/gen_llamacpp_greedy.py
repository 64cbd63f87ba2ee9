#!/usr/bin/env python3
"""Greedy continuations of the real Gemma 3 270M from llama.cpp (llama-cpp-python), the
expected ids for `tests/e2e/tests/real_greedy.rs`.

For the shipped Q4_K_M file and for Q8_0 / Q4_0 / F32 files requantized (dequantized) from it
by `edgegemma-convert quantize --allow-requantize` (the test makes the same files and checks
their sha256 against the ones recorded here), it records per prompt: llama.cpp's prompt ids,
32 greedy tokens (stopping early only at an end-of-generation token) and the smallest gap
between the top two logits along the way (a near tie is where two correct implementations
may part: rounding differences alone move this model's logits by up to ~1, see the test).

Usage: tools/setup-llamacpp.sh && .venv/bin/python tools/gen_llamacpp_greedy.py
"""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from llama_cpp import Llama, llama_cpp

REPO = Path(__file__).resolve().parent.parent
REAL = REPO / "models/real/gemma3-270m-q4_k_m.gguf"
OUT = REPO / "tests/data/real_greedy_llamacpp.json"
N_GEN = 32
PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Water boils at a temperature of",
    "<start_of_turn>user\nWrite a haiku about autumn leaves.<end_of_turn>\n<start_of_turn>model\n",
    "Die Hauptstadt von Deutschland ist",
    "1, 2, 3, 5, 8, 13,",
    "Monday, Tuesday, Wednesday,",
    "January, February, March, April,",
    "A, B, C, D, E, F, G,",
    "10, 20, 30, 40, 50,",
    "The quick brown fox jumps over the lazy dog. The quick brown fox",
    "<html>\n<head>\n<title>",
    "import numpy as np\nimport",
    "To be, or not to be, that is",
    "Twinkle, twinkle, little star,",
    "The first president of the United States was",
    "one two three four five six",
    "red, orange, yellow, green,",
    "for (int i = 0; i <",
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def requantize(ty):
    out = REPO / f"models/real/gemma3-270m-{ty}.gguf"
    if not out.exists():
        conv = REPO / "target/release/edgegemma-convert"
        if not conv.exists():
            subprocess.run(["cargo", "build", "--release", "-p", "edgegemma-convert"], cwd=REPO, check=True)
        subprocess.run([str(conv), "quantize", str(REAL), "-o", str(out), "-t", ty, "--allow-requantize"], check=True)
    return out


def greedy(path):
    llm = Llama(model_path=str(path), n_ctx=512, n_threads=2, n_batch=512, logits_all=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    out = []
    for prompt in PROMPTS:
        ids = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        llm.reset()
        llm.eval(ids)
        gen, margins = [], []
        for _ in range(N_GEN):
            logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            top2 = np.sort(logits)[-2:]
            margins.append(float(top2[1] - top2[0]))
            tok = int(np.argmax(logits))
            if llama_cpp.llama_vocab_is_eog(vocab, tok):
                break
            gen.append(tok)
            llm.eval([tok])
        out.append({
            "prompt": prompt,
            "prompt_ids": [int(i) for i in ids],
            "generated_ids": gen,
            # margins[i]: llama.cpp's top-1 minus top-2 logit when choosing token i.
            "margins": [round(m, 4) for m in margins],
        })
    return out


def main():
    if not REAL.exists():
        sys.exit(f"{REAL} is missing: run tools/fetch-real-model.sh")
    # f32: every tensor dequantized; no 8-bit activations on either side, so the two engines
    # differ only by float rounding and must agree token for token.
    files = {
        "q4_k_m": REAL,
        "q8_0": requantize("q8_0"),
        "q4_0": requantize("q4_0"),
        "f32": requantize("f32"),
    }
    result = {"llama_cpp_python": __import__("llama_cpp").__version__, "n_gen": N_GEN, "models": {}}
    for name, path in files.items():
        result["models"][name] = {"file": path.name, "sha256": sha256(path), "runs": greedy(path)}
        print(name, "done", file=sys.stderr)
    OUT.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
