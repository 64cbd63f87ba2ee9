#!/usr/bin/env python3
"""Static cost table of the aarch64 kernels (ours and ggml's) with llvm-mca.

For each kernel: take its block loop from the assembly (loops.py), flatten inner loops with
their trip counts, run `llvm-mca -mcpu=CPU -iterations=100` on it, and divide the cycles per
iteration by the work done per iteration, counted from the multiply instructions themselves:
one unit = 32 weights of one row times one token (an `sdot` .16b is 16 multiply-adds, `smmla`
32, `smull`/`smlal` to .8h and 16-bit `mul`/`mla` .8h 8, an f32 `fmla` .4s 4 for the float kernels). Prints a markdown
table: cycles per 32-weight block per token.

Usage: costmodel.py ASM_DIR   (run.sh builds ASM_DIR and calls this)
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loops  # noqa: E402

CPUS = {
    'cortex-a72': ['neon'],
    'cortex-a76': ['neon', 'dotprod'],
    'neoverse-n2': ['neon', 'dotprod', 'i8mm'],
}
# The llvm-mca scheduling model per CPU. LLVM 19 schedules -mcpu=cortex-a76 with its
# Cortex-A57 model (the same as cortex-a72: identical cycle counts, 3-wide dispatch); the
# Neoverse-N1 model describes the A76's pipeline (N1 is the A76's server derivative).
MCA_CPU = {'cortex-a72': 'cortex-a72', 'cortex-a76': 'neoverse-n1', 'neoverse-n2': 'neoverse-n2'}
FORMATS = ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q4_K', 'Q5_K', 'Q6_K', 'F16', 'F32']
RUST_FMT = {'Q4_K': 'Q4K', 'Q5_K': 'Q5K', 'Q6_K': 'Q6K', 'F16': 'F16', 'F32': 'F32'}
GEMM_PREFIX = {'neon': 'Neon', 'dotprod': 'Dot', 'i8mm': 'Mm'}

HOT = [
    (re.compile(r'\bsdot\s+v\d+\.4s'), 16),
    (re.compile(r'\bsmmla\s'), 32),
    (re.compile(r'\bsmull2?\s+v\d+\.8h'), 8),
    (re.compile(r'\bsmlal2?\s+v\d+\.8h'), 8),
    # LLVM turns smull of non-negative nibbles into ushll + 16-bit mul/mla.
    (re.compile(r'\b(?:mul|mla)\s+v\d+\.8h,\s*v\d+\.8h,\s*v\d+\.8h'), 8),
]
FMLA = re.compile(r'\bfmla\s+v\d+\.4s,\s*v\d+\.4s,\s*v\d+\.4s')


def macs(trace, float_kernel):
    total = 0
    for line in trace:
        if float_kernel:
            total += 4 * bool(FMLA.search(line))
        else:
            total += sum(n for rx, n in HOT if rx.search(line))
    return total


def is_hot(line):
    return any(rx.search(line) for rx, _ in HOT) or bool(FMLA.search(line))


def block_trace(path, symbol, level, trips, no_smmla=False):
    """The instructions of one block-loop iteration: the innermost loop holding multiplies,
    or `level` loops further out with each inner loop repeated `trips` times."""
    body = loops.function_lines(path, symbol)
    ls = loops.loops(body)
    hot = [(a, b) for a, b in ls if any(is_hot(x) for x in loops.insns(body, a, b))
           and not (no_smmla and any('smmla' in x for x in loops.insns(body, a, b)))]
    if not hot:
        raise ValueError('no loop with multiplies')
    inner = [(a, b) for a, b in hot if not any((c, d) != (a, b) and a <= c and d <= b
                                              for c, d in hot)]
    # The largest innermost hot loop (others are remainder loops).
    loop = max(inner, key=lambda ab: len(loops.insns(body, *ab)))
    for _ in range(level):
        parents = [(a, b) for a, b in ls if a <= loop[0] and loop[1] <= b and (a, b) != loop]
        outer = min(parents, key=lambda ab: ab[1] - ab[0])
        child = loop
        trace = [body[k] for k in range(outer[0], child[0]) if loops.is_insn(body[k])]
        trace += loops.insns(body, *child) * trips
        trace += [body[k] for k in range(child[1] + 1, outer[1] + 1) if loops.is_insn(body[k])]
        loop = outer
        body_trace = trace
    if level == 0:
        body_trace = loops.insns(body, *loop)
    return body_trace


def mca(cpu, trace):
    src = '\n'.join(trace) + '\n'
    out = subprocess.run(['llvm-mca-19', '-mtriple=aarch64', f'-mcpu={MCA_CPU[cpu]}',
                          '-iterations=100'],
                         input=src, capture_output=True, text=True)
    if out.returncode != 0:
        raise ValueError(out.stderr.strip().splitlines()[0])
    m = re.search(r'Total Cycles:\s+(\d+)', out.stdout)
    return int(m.group(1)) / 100.0


def entries(cpu):
    """(kind, format, who/path, file, symbol regex, level, trips, expected units)."""
    out = []
    for path in CPUS[cpu]:
        for f in FORMATS:
            rf = RUST_FMT.get(f, f)
            if f in ('F16', 'F32'):
                if path != 'neon':
                    continue
                out.append(('prefill', f, f'ours {path}', 'rust',
                            rf'aarch64::neon::{rf} as .*RowKernel>::dot::run::<4, 4>$', 0, 0, 0))
                out.append(('decode', f, f'ours {path}', 'rust',
                            rf'aarch64::neon::{rf} as .*RowKernel>::dot::run::<4, 1>$', 0, 0, 0))
                continue
            out.append(('prefill', f, f'ours {path}', 'rust',
                        rf'aarch64::gemm\w*::{GEMM_PREFIX[path]}{rf} as .*Tile4>::tile::run::<4>$',
                        0, 0, 0))
            if path == 'i8mm':
                continue  # decode: the dotprod kernels
            if path == 'dotprod' and f == 'Q6_K':
                sym = r'aarch64::dotprod::Q6K as .*RowKernel>::dot::run::<2, 1>$'
                out.append(('decode', f, f'ours {path}', 'rust', sym, 1, 2, 0))
            else:
                sym = rf'aarch64::gemm\w*::{GEMM_PREFIX[path]}{rf} as .*Tile4>::tile::run::<1>$'
                out.append(('decode', f, f'ours {path}', 'rust', sym, 0, 0, 0))
    g = 'ggml ' + CPUS[cpu][-1]
    for f, fn in [('Q4_0', 'q4_0_q8_0'), ('Q5_0', 'q5_0_q8_0'), ('Q8_0', 'q8_0_q8_0'),
                  ('Q4_K', 'q4_K_q8_K'), ('Q6_K', 'q6_K_q8_K')]:
        out.append(('decode', f, g + ' vec_dot', 'quants', rf'^ggml_vec_dot_{fn}$', 0, 0, 0))
    # (kind, format, function, loop levels to flatten, inner trip count, units per block
    # iteration: rows x tokens x 32-weight groups of one block of the interleaved rows).
    repack = [
        ('prefill', 'Q4_0', 'gemm_q4_0_4x4_q8_0', 0, 0, 16),
        ('prefill', 'Q4_0', 'gemm_q4_0_4x8_q8_0', 0, 0, 16),
        ('prefill', 'Q4_0', 'gemm_q4_0_8x8_q8_0', 0, 0, 32),
        ('prefill', 'Q8_0', 'gemm_q8_0_4x4_q8_0', 0, 0, 16),
        ('prefill', 'Q8_0', 'gemm_q8_0_4x8_q8_0', 0, 0, 16),
        ('prefill', 'Q4_K', 'gemm_q4_K_8x4_q8_K', 1, 4, 256),
        ('prefill', 'Q4_K', 'gemm_q4_K_8x8_q8_K', 1, 4, 256),
        ('prefill', 'Q6_K', 'gemm_q6_K_8x4_q8_K', 0, 0, 256),
        ('prefill', 'Q6_K', 'gemm_q6_K_8x8_q8_K', 0, 0, 256),
        ('decode', 'Q4_0', 'gemv_q4_0_4x4_q8_0', 0, 0, 4),
        ('decode', 'Q4_0', 'gemv_q4_0_4x8_q8_0', 0, 0, 4),
        ('decode', 'Q8_0', 'gemv_q8_0_4x4_q8_0', 0, 0, 4),
        ('decode', 'Q4_K', 'gemv_q4_K_8x4_q8_K', 1, 4, 64),
        ('decode', 'Q6_K', 'gemv_q6_K_8x4_q8_K', 0, 0, 64),
    ]
    for kind, f, fn, level, trips, expect in repack:
        out.append((kind, f, 'ggml repack ' + fn, 'repack', rf'^ggml_{fn}$', level, trips, expect))
    return out


def main():
    asm_dir = sys.argv[1]
    rust_asm = {cpu: os.path.join(asm_dir, f'rust-{cpu}.s') for cpu in CPUS}
    rows = {}
    notes = []
    for cpu in CPUS:
        files = {'rust': rust_asm[cpu], 'quants': os.path.join(asm_dir, f'ggml-quants-{cpu}.s'),
                 'repack': os.path.join(asm_dir, f'ggml-repack-{cpu}.s')}
        for kind, f, who, file, sym, level, trips, expect in entries(cpu):
            key = (kind, f, who)
            try:
                # ggml's vec_dot has a 2x2 smmla loop for nrc == 2; decode (nrc == 1) runs
                # the sdot loop.
                trace = block_trace(files[file], sym, level, trips, 'vec_dot' in who)
                work = macs(trace, f.startswith('F')) / 32.0
                cyc = mca(cpu, trace)
                # A kernel whose block iteration spans loops we do not flatten: its inner loop
                # alone, a lower bound of its cost.
                partial = work < expect
                rows.setdefault(key, {})[cpu] = (cyc / work, cyc, work, partial)
            except (ValueError, SystemExit) as e:
                msg = str(e)
                if 'functions match' in msg or 'no loop' in msg:
                    continue  # not built for this CPU (e.g. a ggml fallback to generic C)
                notes.append(f'{cpu} {who} {f} {kind}: {msg}')
    print('| kind | format | kernel | ' + ' | '.join(CPUS) + ' |')
    print('|---|---|---|' + '---|' * len(CPUS))
    order = {f: i for i, f in enumerate(FORMATS)}
    for key in sorted(rows, key=lambda k: (k[0] != 'prefill', order[k[1]], k[2])):
        cells = []
        for cpu in CPUS:
            if cpu in rows[key]:
                per, cyc, work, partial = rows[key][cpu]
                cells.append(f"{'>=' if partial else ''}{per:.2f} ({cyc:.0f}/{work:g})")
            else:
                cells.append('')
        print(f'| {key[0]} | {key[1]} | {key[2]} | ' + ' | '.join(cells) + ' |')
    for n in notes:
        print('note:', n, file=sys.stderr)
    import json
    with open(os.path.join(asm_dir, 'table.json'), 'w') as f:
        json.dump({'|'.join(k): {c: v[0] for c, v in r.items()} for k, r in rows.items()}, f,
                  indent=1)


if __name__ == '__main__':
    main()
