#!/usr/bin/env python3
"""Finds the loops of one function in an assembly file and prints them (or one of them).

Usage: loops.py FILE.s SYMBOL_REGEX [--list | --loop N | --nest]
  SYMBOL_REGEX matches the demangled name (llvm-cxxfilt) of the function.
  --list     every loop: index, depth, first/last line, instruction count, loops inside
  --loop N   the instructions of loop N (branches and labels kept), for llvm-mca
  --nest     the block loop flattened: each instruction with its trip multiplier
A loop is a label and a later branch back to it; loops nest by line ranges.
"""
import re
import subprocess
import sys

LABEL = re.compile(r'^([.\w$]+):')
BRANCH = re.compile(r'^\s+(b\.\w+|b|cbn?z|tbn?z)\s+(?:[^,]+,\s*)*([.\w$]+)\s*$')


def demangle(names):
    out = subprocess.run(['llvm-cxxfilt-19'], input='\n'.join(names), capture_output=True,
                         text=True, check=True).stdout.splitlines()
    return dict(zip(names, out))


def function_lines(path, pattern):
    lines = open(path).read().splitlines()
    starts = [(i, LABEL.match(l).group(1)) for i, l in enumerate(lines)
              if LABEL.match(l) and not l.startswith('.L') and not l.startswith('\t')]
    names = demangle([n for _, n in starts])
    rx = re.compile(pattern)
    hits = [(i, n) for i, n in starts if rx.search(names[n])]
    if len(hits) != 1:
        sys.exit(f'{pattern!r}: {len(hits)} functions match: ' +
                 '; '.join(names[n] for _, n in hits[:5]))
    i0, name = hits[0]
    end = next(j for j in range(i0 + 1, len(lines)) if lines[j].startswith('.Lfunc_end'))
    return lines[i0 + 1:end]


def is_insn(l):
    s = l.strip()
    return bool(s) and not s.startswith(('.', '//', '#', ';')) and not LABEL.match(s)


def loops(body):
    labels = {LABEL.match(l).group(1): i for i, l in enumerate(body) if LABEL.match(l)}
    found = []
    for i, l in enumerate(body):
        m = BRANCH.match(l)
        if m and m.group(2) in labels and labels[m.group(2)] <= i:
            found.append((labels[m.group(2)], i))
    # Merge loops with the same head (several back-edges): keep the widest.
    by_head = {}
    for a, b in found:
        by_head[a] = max(b, by_head.get(a, b))
    return sorted(by_head.items())


def insns(body, a, b):
    return [body[k] for k in range(a, b + 1) if is_insn(body[k])]


def main():
    path, pattern, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    body = function_lines(path, pattern)
    ls = loops(body)
    if mode == '--list':
        for k, (a, b) in enumerate(ls):
            inner = [j for j, (c, d) in enumerate(ls) if j != k and a <= c and d <= b]
            print(k, a, b, len(insns(body, a, b)), inner)
    elif mode == '--loop':
        a, b = ls[int(sys.argv[4])]
        for l in body[a:b + 1]:
            if is_insn(l) or LABEL.match(l):
                print(l)
    else:
        sys.exit('unknown mode ' + mode)


if __name__ == '__main__':
    main()
