#!/usr/bin/env python3
"""Speed and memory of `edgegemma bench` against llama.cpp's `llama-bench` on the same GGUF files.

Usage: benches/compare_llamacpp.py [options]        (python3 >= 3.9, standard library only)

What it does, on a fresh machine:
 1. builds `edgegemma` (and `edgegemma-convert`) with `cargo build --release`;
 2. builds llama.cpp's `llama-bench` (and `llama-quantize`) natively from the llama.cpp sources
    vendored in the PyPI sdist of `llama-cpp-python` (pinned below) into bench-out/llama.cpp/
    (gitignored, cached: later runs reuse it). cmake comes from PyPI into a venv there when the
    system has none; a C/C++ compiler must be installed (Debian: `apt-get install build-essential`);
 3. gets the shipped Gemma 3 270M Q4_K_M GGUF (tools/fetch-real-model.sh) and makes Q8_0 and Q4_0
    files from it in bench-out/models/ (see --quantizer; requantizing from Q4_K_M loses quality,
    but only speed is compared here, and both programs read the very same file);
 4. for every file and thread count runs `edgegemma bench` and `llama-bench` with the same
    -p/-n/-r, alternating (E L E L ...) for --rounds rounds so slow drifts in machine load hit
    both alike; peak RSS of each process is taken from the kernel (wait4 ru_maxrss);
 5. prints a markdown table (median over rounds, or --stat best) with the t/s ratios, the peak RSS ratio and
    decode speed as a share of the memory-bandwidth limit (weight bytes per token / read
    bandwidth measured by `edgegemma bench --mem-bw` in the same run), and writes it, with the
    raw rows, to bench-out/compare-<time>.{md,jsonl}.

Run it on an idle machine: other work on the cores skews both programs, not always alike.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
CMAKE_PYPI = "cmake==3.31.6"

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench-out"
LLAMA_DIR = OUT / "llama.cpp"
SHIPPED = REPO / "models" / "real" / "gemma3-270m-q4_k_m.gguf"


def log(msg):
    print(f"compare: {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"compare: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def run(cmd, **kw):
    log("$ " + " ".join(str(c) for c in cmd))
    r = subprocess.run([str(c) for c in cmd], **kw)
    if r.returncode != 0:
        die(f"command failed with status {r.returncode}: {' '.join(str(c) for c in cmd)}")
    return r


# ---------------------------------------------------------------------------------------------
# llama.cpp from the llama-cpp-python sdist



def isa_flags() -> list[str]:
    """GGML_NATIVE=ON, except on a CPU that lists AMX: there (a Sapphire Rapids VM of this
    machine kind) llama.cpp's native build runs AMX tile code that the VM does not let a
    process use, and llama-bench dies with a general protection fault at `ldtilecfg`
    (seen 2026-12-02). So the build names each other ISA extension the CPU lists instead."""
    try:
        flags = set(open("/proc/cpuinfo").read().split())
    except OSError:
        flags = set()
    if "amx_tile" not in flags:
        return ["-DGGML_NATIVE=ON"]
    wanted = {"avx": "GGML_AVX", "avx2": "GGML_AVX2", "bmi2": "GGML_BMI2", "fma": "GGML_FMA",
              "f16c": "GGML_F16C", "avx_vnni": "GGML_AVX_VNNI", "avx512f": "GGML_AVX512",
              "avx512vbmi": "GGML_AVX512_VBMI", "avx512_vnni": "GGML_AVX512_VNNI",
              "avx512_bf16": "GGML_AVX512_BF16"}
    return ["-DGGML_NATIVE=OFF"] + [f"-D{opt}={'ON' if f in flags else 'OFF'}"
                                    for f, opt in wanted.items()]

def find_cmake():
    """System cmake if new enough, else one from PyPI in bench-out/llama.cpp/venv."""
    sys_cmake = shutil.which("cmake")
    if sys_cmake:
        out = subprocess.run([sys_cmake, "--version"], capture_output=True, text=True).stdout
        try:
            major, minor = (int(x) for x in out.split()[2].split(".")[:2])
            if (major, minor) >= (3, 16):
                return sys_cmake
        except (IndexError, ValueError):
            pass
    venv = LLAMA_DIR / "venv"
    cmake = venv / "bin" / "cmake"
    if not cmake.exists():
        if not (venv / "bin" / "python").exists():
            run([sys.executable, "-m", "venv", venv])
        run([venv / "bin" / "python", "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", CMAKE_PYPI])
    return str(cmake)


def setup_llama_cpp(jobs):
    """Builds llama-bench and llama-quantize once; returns the directory holding them."""
    bin_dir = LLAMA_DIR / "build" / "bin"
    stamp = LLAMA_DIR / "built-from"
    if (bin_dir / "llama-bench").exists() and (bin_dir / "llama-quantize").exists() \
            and stamp.exists() and stamp.read_text().strip() == LLAMA_CPP_PYTHON:
        return bin_dir
    for tool in ("cc", "c++"):
        if not shutil.which(tool):
            die(f"no {tool} on PATH: install a C/C++ compiler (Debian: apt-get install build-essential)")
    LLAMA_DIR.mkdir(parents=True, exist_ok=True)
    src = LLAMA_DIR / "src"
    if not (src / "CMakeLists.txt").exists():
        dl = LLAMA_DIR / "sdist"
        dl.mkdir(exist_ok=True)
        sdists = sorted(dl.glob("llama_cpp_python-*.tar.gz"))
        if not sdists:
            pip_py = sys.executable
            venv_py = LLAMA_DIR / "venv" / "bin" / "python"
            if venv_py.exists():
                pip_py = str(venv_py)
            run([pip_py, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                 "--no-deps", "--no-binary", LLAMA_CPP_PYTHON.split("==")[0], "-d", dl,
                 LLAMA_CPP_PYTHON])
            sdists = sorted(dl.glob("llama_cpp_python-*.tar.gz"))
            if not sdists:
                die(f"pip download of {LLAMA_CPP_PYTHON} produced no sdist in {dl}")
        tmp = LLAMA_DIR / "unpack"
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(sdists[0]) as tf:
            # The sdist is a plain source tree; refuse absolute or parent-relative members.
            for m in tf.getmembers():
                if m.name.startswith("/") or ".." in Path(m.name).parts:
                    die(f"{sdists[0]}: unsafe path in archive: {m.name}")
            tf.extractall(tmp)
        vendored = next(tmp.glob("*/vendor/llama.cpp"), None)
        if vendored is None or not (vendored / "CMakeLists.txt").exists():
            die(f"{sdists[0]}: no vendor/llama.cpp in the sdist")
        shutil.rmtree(src, ignore_errors=True)
        shutil.move(str(vendored), str(src))
        shutil.rmtree(tmp, ignore_errors=True)
    cmake = find_cmake()
    build = LLAMA_DIR / "build"
    build_log = LLAMA_DIR / "build.log"
    log(f"building llama.cpp (10-20 minutes on 2 cores; output in {build_log})")
    with open(build_log, "w") as bl:
        for cmd in ([cmake, "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                     *isa_flags(), "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
                     "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                     "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_TOOLS=ON",
                     "-DBUILD_SHARED_LIBS=OFF", "-Wno-dev"],
                    [cmake, "--build", build, "--config", "Release", "-j", str(jobs),
                     "--target", "llama-bench", "llama-quantize"]):
            log("$ " + " ".join(str(c) for c in cmd))
            bl.write("$ " + " ".join(str(c) for c in cmd) + "\n")
            bl.flush()
            r = subprocess.run([str(c) for c in cmd], stdout=bl, stderr=subprocess.STDOUT)
            if r.returncode != 0:
                tail = build_log.read_text(errors="replace").splitlines()[-20:]
                die("llama.cpp build failed; last lines of " + str(build_log) + ":\n"
                    + "\n".join(tail))
    if not (bin_dir / "llama-bench").exists():
        die(f"llama-bench was not built in {bin_dir}")
    stamp.write_text(LLAMA_CPP_PYTHON + "\n")
    return bin_dir


# ---------------------------------------------------------------------------------------------
# edgegemma and the model files


def cargo_target_dir():
    out = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                         cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        die(f"cargo metadata failed: {out.stderr.strip()}")
    return Path(json.loads(out.stdout)["target_directory"])


def build_edgegemma(need_convert):
    """Builds `edgegemma`, and `edgegemma-convert` when it may be used (a failure there only
    matters with --quantizer edgegemma)."""
    run(["cargo", "build", "--release", "--quiet", "-p", "edgegemma", "--bin", "edgegemma"],
        cwd=REPO)
    release = cargo_target_dir() / "release"
    convert = release / "edgegemma-convert"
    if need_convert:
        r = subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "edgegemma-convert"],
                           cwd=REPO)
        if r.returncode != 0:
            log("edgegemma-convert did not build; llama-quantize can make the files instead")
            convert = Path("/nonexistent/edgegemma-convert")
    return release / "edgegemma", convert


def convert_can_quantize(convert):
    if not convert.exists():
        return False
    r = subprocess.run([str(convert), "quantize", "--help"], capture_output=True, text=True)
    return r.returncode == 0 and "allow-requantize" in r.stdout


def make_models(args, convert, llama_bin):
    """The shipped Q4_K_M plus Q8_0 and Q4_0 requantized from it (cached in bench-out/models)."""
    if not SHIPPED.exists():
        run([REPO / "tools" / "fetch-real-model.sh"])
    out_dir = OUT / "models"
    out_dir.mkdir(parents=True, exist_ok=True)
    quantizer = args.quantizer
    if quantizer == "auto":
        quantizer = "edgegemma" if convert_can_quantize(convert) else "llama"
    if quantizer == "edgegemma" and not convert_can_quantize(convert):
        die(f"{convert} has no `quantize --allow-requantize`; use --quantizer llama")
    models = [SHIPPED]
    for ty in ("q8_0", "q4_0"):
        dst = out_dir / f"gemma3-270m-{ty}.{quantizer}.gguf"
        if not dst.exists():
            tmp = dst.with_suffix(".tmp")
            if quantizer == "edgegemma":
                run([convert, "quantize", SHIPPED, "-o", tmp, "-t", ty, "--allow-requantize"])
            else:
                run([llama_bin / "llama-quantize", "--allow-requantize", SHIPPED, tmp, ty.upper(),
                     str(max(1, os.cpu_count() or 1))], stdout=subprocess.DEVNULL)
            tmp.rename(dst)
        models.append(dst)
    return models, quantizer


# ---------------------------------------------------------------------------------------------
# Running both


def run_measured(cmd, log_path):
    """Runs `cmd`; returns (stdout text, peak RSS of the process in bytes, wall seconds)."""
    log(f"$ {' '.join(str(c) for c in cmd)}")
    with open(log_path, "ab") as err, \
            open(log_path.with_suffix(".out"), "w+b") as out:
        err.write(("\n$ " + " ".join(str(c) for c in cmd) + "\n").encode())
        err.flush()
        t0 = time.monotonic()
        p = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        text = out.read().decode()
    if p.returncode != 0:
        die(f"exit status {p.returncode}: {' '.join(str(c) for c in cmd)} (log: {log_path})")
    # ru_maxrss is in KiB on Linux.
    return text, usage.ru_maxrss * 1024, wall


def jsonl_rows(text):
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    return rows


def test_name(row):
    p, g = int(row["n_prompt"]), int(row["n_gen"])
    return f"pp{p}" if g == 0 else (f"tg{g}" if p == 0 else f"pp{p}+tg{g}")


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_mib(b):
    return f"{b / 2**20:.0f} MiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", action="append", type=Path,
                    help="GGUF to compare (repeatable; default: Gemma 3 270M as Q4_K_M, Q8_0, Q4_0)")
    ap.add_argument("-t", "--threads", default="1,2", help="thread counts (default 1,2)")
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-r", "--repetitions", type=int, default=5, help="per run, for both programs")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating runs of each program per file and thread count (default 3)")
    ap.add_argument("--quantizer", choices=["auto", "edgegemma", "llama"], default="auto",
                    help="makes the Q8_0/Q4_0 files: edgegemma-convert quantize, or llama-quantize "
                         "(auto: edgegemma-convert if it can)")
    ap.add_argument("--stat", choices=["median", "best"], default="median",
                    help="how rounds are combined: median, or best (highest t/s, lowest RSS; "
                         "closest to an idle machine when other work shares the cores)")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="build jobs for llama.cpp")
    ap.add_argument("--setup-only", action="store_true", help="build everything, measure nothing")
    ap.add_argument("--report", type=Path, metavar="RAW.jsonl",
                    help="only print the table again from the raw rows of an earlier run")
    args = ap.parse_args()
    if args.report:
        print(report_from_raw(args), end="")
        return
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    if not threads or min(threads) < 1 or args.rounds < 1 or args.repetitions < 1:
        die("--threads, --rounds and --repetitions must be positive")
    if platform.system() != "Linux":
        die("this script reads peak RSS the Linux way (wait4); run it on Linux")

    OUT.mkdir(exist_ok=True)
    busy = os.getloadavg()[0]
    if busy > 0.5:
        log(f"warning: 1-minute load average is {busy:.1f}; other work on the cores skews the "
            "numbers (llama.cpp's spinning threads suffer most when cores are shared)")
    edgegemma, convert = build_edgegemma(not args.model and args.quantizer != "llama")
    llama_bin = setup_llama_cpp(args.jobs)
    if args.model:
        models, quantizer = args.model, None
        for m in models:
            if not m.exists():
                die(f"{m}: no such file")
    else:
        models, quantizer = make_models(args, convert, llama_bin)
    if args.setup_only:
        log(f"ready: {edgegemma}, {llama_bin / 'llama-bench'}, models {', '.join(map(str, models))}")
        return

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = OUT / f"compare-{stamp}.log"
    raw_path = OUT / f"compare-{stamp}.jsonl"
    loads = [os.getloadavg()[0]]
    common = ["-p", str(args.n_prompt), "-n", str(args.n_gen), "-r", str(args.repetitions)]
    # results[(model, threads, engine)] = list of per-round dicts
    results = {}
    bw = {}
    raw = open(raw_path, "w")
    for rnd in range(args.rounds):
        for model in models:
            for t in threads:
                # Bandwidth in its own process: its buffer would otherwise count in peak RSS.
                text, _, _ = run_measured(
                    [edgegemma, "bench", "-m", model, "-t", t, "-p", "0", "-n", "1", "-r", "1",
                     "--no-warmup", "--mem-bw", "-q", "-o", "jsonl"], log_path)
                row = jsonl_rows(text)[0]
                bw.setdefault(t, []).append(row["mem_bw_bytes_per_s"])
                raw.write(json.dumps({"round": rnd, "engine": "mem_bw", "model": str(model),
                                      "threads": t, "bytes_per_s": row["mem_bw_bytes_per_s"]})
                          + "\n")
                engines = ["edgegemma", "llama.cpp"]
                if rnd % 2 == 1:
                    engines.reverse()  # E L, then L E: neither always runs first
                for engine in engines:
                    loads.append(os.getloadavg()[0])
                    if engine == "edgegemma":
                        cmd = [edgegemma, "bench", "-m", model, "-t", t, *common, "-o", "jsonl", "-q"]
                    else:
                        cmd = [llama_bin / "llama-bench", "-m", model, "-t", t, *common, "-o", "jsonl"]
                    text, rss, wall = run_measured(cmd, log_path)
                    rows = jsonl_rows(text)
                    if not rows:
                        die(f"{engine} printed no result rows (log: {log_path})")
                    rec = {"round": rnd, "engine": engine, "model": str(model), "threads": t,
                           "peak_rss_bytes": rss, "wall_s": wall, "load": loads[-1],
                           "ts": {test_name(r): r["avg_ts"] for r in rows},
                           "sd": {test_name(r): r["stddev_ts"] for r in rows}, "rows": rows}
                    raw.write(json.dumps(rec) + "\n")
                    raw.flush()
                    results.setdefault((str(model), t, engine), []).append(rec)
    raw.close()
    loads.append(os.getloadavg()[0])
    report = make_report(args, models, threads, results, bw, loads, quantizer)
    md_path = OUT / f"compare-{stamp}.md"
    md_path.write_text(report)
    print(report, end="")
    log(f"wrote {md_path} and {raw_path}")


def report_from_raw(args):
    """The table of an earlier run (its settings are taken from the rows, not the options)."""
    results, bw, models, threads = {}, {}, [], []
    try:
        recs = [json.loads(line) for line in args.report.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as e:
        die(f"{args.report}: {e}")
    for rec in recs:
        t = rec["threads"]
        if t not in threads:
            threads.append(t)
        if rec["engine"] == "mem_bw":
            bw.setdefault(t, []).append(rec["bytes_per_s"])
            continue
        if rec["model"] not in models:
            models.append(rec["model"])
        results.setdefault((rec["model"], t, rec["engine"]), []).append(rec)
    if not results or not bw:
        die(f"{args.report}: no result rows or no bandwidth rows in it")
    row = next(iter(results.values()))[0]["rows"][0]
    args.n_prompt = max(int(r["n_prompt"]) for v in results.values() for x in v for r in x["rows"])
    args.n_gen = max(int(r["n_gen"]) for v in results.values() for x in v for r in x["rows"])
    args.repetitions = len(row["samples_ns"])
    args.rounds = max(x["round"] for v in results.values() for x in v) + 1
    loads = [rec.get("load", float("nan")) for v in results.values() for rec in v]
    quantizer = "edgegemma" if any(".edgegemma." in m for m in models) else (
        "llama" if any(".llama." in m for m in models) else None)
    return make_report(args, models, threads, results, bw, loads, quantizer)


def git_version():
    def git(*a):
        r = subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""
    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return "(not a git checkout)"
    return head + (" + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def make_report(args, models, threads, results, bw, loads, quantizer):
    pp, tg = f"pp{args.n_prompt}", f"tg{args.n_gen}"
    best = args.stat == "best"
    hi = max if best else median  # for t/s and bandwidth
    lo = min if best else median  # for RSS
    first_e = next(iter(v for k, v in results.items() if k[2] == "edgegemma"))[0]["rows"][0]
    first_l = next(iter(v for k, v in results.items() if k[2] == "llama.cpp"))[0]["rows"][0]
    commit = first_l.get("build_commit") or "unknown"
    llama = "llama.cpp" + ("" if commit == "unknown" else f" {commit}")
    lines = []
    lines.append(f"Machine: {first_e['cpu_info']}, {first_e['n_cpus']} hardware threads, "
                 f"{platform.system()} {platform.release()} ({platform.machine()}). "
                 f"edgegemma {git_version()}, kernels {first_e['kernels']}; {llama} as vendored in "
                 f"PyPI {LLAMA_CPP_PYTHON}, built here with GGML_NATIVE=ON (or, on a CPU with AMX, each other ISA extension it lists).")
    lines.append(f"Settings: -p {args.n_prompt} -n {args.n_gen} -r {args.repetitions}, "
                 f"{args.rounds} alternating rounds per cell ({'best' if best else 'median'} shown); "
                 f"1-minute load average before each run {min(loads):.1f}–{max(loads):.1f} "
                 f"on {os.cpu_count()} CPUs (the benchmark itself adds 1–2); "
                 f"{(first_e.get('test_time') or datetime.date.today().isoformat())[:10]}.")
    lines.append("")
    lines.append(f"| file | embd | threads | {pp} edgegemma | {pp} llama.cpp | ratio "
                 f"| {tg} edgegemma | {tg} llama.cpp | ratio | {tg} % of BW limit (E / L) "
                 "| peak RSS edgegemma | peak RSS llama.cpp | RSS ratio |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for model in models:
        for t in threads:
            e = results[(str(model), t, "edgegemma")]
            l = results[(str(model), t, "llama.cpp")]
            row0 = e[0]["rows"][0]
            e_pp = hi([r["ts"][pp] for r in e if pp in r["ts"]] or [float("nan")])
            l_pp = hi([r["ts"][pp] for r in l if pp in r["ts"]] or [float("nan")])
            e_tg = hi([r["ts"][tg] for r in e if tg in r["ts"]] or [float("nan")])
            l_tg = hi([r["ts"][tg] for r in l if tg in r["ts"]] or [float("nan")])
            e_rss = lo([r["peak_rss_bytes"] for r in e])
            l_rss = lo([r["peak_rss_bytes"] for r in l])
            limit = hi(bw[t]) / row0["weight_bytes_per_token"]
            lines.append(
                f"| {Path(model).name} | {row0.get('token_embd_type') or '?'} | {t} "
                f"| {e_pp:.1f} | {l_pp:.1f} | {e_pp / l_pp:.2f} "
                f"| {e_tg:.1f} | {l_tg:.1f} | {e_tg / l_tg:.2f} "
                f"| {100 * e_tg / limit:.0f}% / {100 * l_tg / limit:.0f}% "
                f"| {fmt_mib(e_rss)} | {fmt_mib(l_rss)} | {e_rss / l_rss:.2f} |")
    lines.append("")
    lines.append("Ratios are edgegemma / llama.cpp (t/s: higher is better for edgegemma; RSS: lower is). "
                 "Peak RSS is each whole process's (kernel ru_maxrss; both map the file, so touched "
                 "weights count). BW limit = memory read bandwidth measured with the same threads "
                 "(`edgegemma bench --mem-bw`, a buffer as large as a token's weights) / weight bytes "
                 "read per token.")
    bpt = {Path(m).name: results[(str(m), threads[0], "edgegemma")][0]["rows"][0]["weight_bytes_per_token"]
           for m in models}
    bws = ", ".join(f"{t} thread{'s' if t > 1 else ''}: {hi(bw[t]) / 1e9:.1f} GB/s"
                    for t in threads)
    lines.append(f"Read bandwidth ({args.stat}): {bws}. Weight bytes per token: "
                 + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in bpt.items()) + ".")
    if quantizer:
        lines.append(f"The Q8_0 and Q4_0 files were requantized from the shipped Q4_K_M with "
                     f"{'edgegemma-convert quantize' if quantizer == 'edgegemma' else 'llama-quantize'} "
                     "--allow-requantize: worse quality than quantizing from the original weights, "
                     "the same bytes to read; only speed is compared.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
