#!/usr/bin/env python3
"""Decode and prefill tokens/s estimates for Gemma 3 270M and 1B (Q4_K_M) on a Raspberry Pi 5
(Cortex-A76) and Pi 4 (Cortex-A72) from the cost table (costmodel.py's table.json):
per token, max(bytes / bandwidth, cycles / frequency / threads).

Usage: estimate.py target/mca/table.json
"""
import json
import sys

# Weights per format of the llama.cpp Q4_K_M files (from the 270M file's tensor types: the
# 640- and 1152-wide inputs are not multiples of 256, so attn_q/k, ffn_gate/up fall back to
# Q5_0 and half the attn_v to Q8_0; the tied token embedding / output projection is Q8_0).
def shapes(d, ff, layers, q=1024, kv=256, vocab=262144):
    half = layers // 2
    return {
        'Q5_0': layers * (d * q + d * kv + 2 * d * ff) + (layers - half) * d * kv,
        'Q8_0': half * d * kv + vocab * d,
        'Q4_K': layers * q * d + (layers - half) * ff * d,
        'Q6_K': half * ff * d,
    }, vocab * d


MODELS = {'Gemma 3 270M': shapes(640, 2048, 18), 'Gemma 3 1B': shapes(1152, 6912, 26)}
BYTES_PER_WEIGHT = {'Q5_0': 22 / 32, 'Q8_0': 34 / 32, 'Q4_K': 144 / 256, 'Q6_K': 210 / 256}
# (name, llvm cpu, path, GHz, {threads: read GB/s})
DEVICES = [
    ('Pi 5', 'cortex-a76', 'dotprod', 2.4, {1: 9.3, 2: 13.2, 4: 11.6}),
    ('Pi 4', 'cortex-a72', 'neon', 1.8, {1: 5.0, 2: 5.0, 4: 5.0}),
]


def main():
    table = json.load(open(sys.argv[1]))

    def cyc(kind, fmt, path, cpu):
        return table[f'{kind}|{fmt}|ours {path}'][cpu]

    for model, (weights, out_w) in MODELS.items():
        total_bytes = sum(n * BYTES_PER_WEIGHT[f] for f, n in weights.items())
        print(f'### {model}: {sum(weights.values()) / 1e6:.1f} M weights, '
              f'{total_bytes / 1e6:.1f} MB read per decode token\n')
        for dev, cpu, path, ghz, bw in DEVICES:
            terms = []
            cycles = 0.0
            for f, n in weights.items():
                c = cyc('decode', f, path, cpu)
                cycles += n / 32 * c
                terms.append(f'{n / 32 / 1e6:.2f} M {f} blocks x {c:.2f}')
            print(f'**{dev}** ({cpu}, {path}, {ghz} GHz), decode: cycles/token = '
                  + ' + '.join(terms) + f' = {cycles / 1e6:.1f} M\n')
            print('| threads | bytes / bandwidth | cycles / (f x threads) | ms/token | t/s |')
            print('|---|---|---|---|---|')
            for t, gbs in bw.items():
                mem = total_bytes / (gbs * 1e9) * 1e3
                comp = cycles / (ghz * 1e9 * t) * 1e3
                ms = max(mem, comp)
                print(f'| {t} | {total_bytes / 1e6:.1f} MB / {gbs} GB/s = {mem:.1f} ms | '
                      f'{cycles / 1e6:.1f} M / ({ghz} GHz x {t}) = {comp:.1f} ms | {ms:.1f} | '
                      f'{1e3 / ms:.0f} |')
            # Prefill: compute-bound; the output projection runs for the last token only.
            pc = 0.0
            terms = []
            for f, n in weights.items():
                n_layers = n - (out_w if f == 'Q8_0' else 0)
                c = cyc('prefill', f, path, cpu)
                pc += n_layers / 32 * c
                terms.append(f'{n_layers / 32 / 1e6:.2f} M {f} x {c:.2f}')
            print(f'\nPrefill (layers only; logits for the last token): cycles/token = '
                  + ' + '.join(terms) + f' = {pc / 1e6:.1f} M -> '
                  + ', '.join(f'{t} thread{"s" if t > 1 else ""} {ghz * 1e9 * t / pc:.0f} t/s'
                              for t in (1, 2, 4)) + '\n')


if __name__ == '__main__':
    main()
