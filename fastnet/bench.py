"""Backends side by side on this machine: ``python -m fastnet.bench``.

Prints ms/step, samples/s and the speed-up over the float64 numpy reference for every case of
:mod:`fastnet.benchmarks` (each checked against the reference before it is timed), the start-up
time of the numba backend with an empty and with a warm kernel cache, and optionally draws a bar
chart. ``--markdown`` prints the table the README shows.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from fastnet.benchmarks import (EPOCH_CASES, FMA_UNITS, MAIN_CASES, PEER_CASES, SCALING_CASES, WIDE_CASES, Case,
                                WARM_SECONDS, checked_run, clock_hz, floor_seconds, fma_bits, time_interleaved,
                                timing_groups)
from fastnet.peers import missing_reason
from fastnet.cli import prog_name

STARTUP_SCRIPT = """
import time; t0 = time.perf_counter()
import numpy as np, fastnet
X = np.random.default_rng(0).integers(0, 256, (1000, 784)).astype(np.uint8); y = np.arange(1000) % 10
net, backend = fastnet.Network.init(dtype="{dtype}"), fastnet.get_backend("numba")
if "{path}" == "step":
    backend.step(net, X, y, lr=0.1)
else:
    backend.epoch(net, X, y, lr=0.1, batch_size=64, order=np.arange(1000))
print(time.perf_counter() - t0, flush=True)
from fastnet.backends.numba import compiling
compiling.wait_for_helpers()  # a compiling helper still running would slow the next measurement
"""


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import llvmlite.binding as llvm
    import numba
    import numpy

    return (f"{cpu} ({llvm.get_host_cpu_name()}), {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"numpy {numpy.__version__}, numba {numba.__version__}")


def startup_seconds(dtype="float32", cache_dir=None, path="step"):
    """Wall time of a fresh process from start to its first numba full-batch step (``path``
    "step") or mini-batch epoch ("epoch") finished: until the child says it finished, not until
    it has exited (interpreter shutdown, ~0.2-0.5 s here, comes after the result)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir) if cache_dir else dict(os.environ)
    # As on a user's machine, the child writes and reuses Python's bytecode caches: with them off
    # (as some sandboxes and CI set), every process compiles numba's ~200 modules from source
    # again, ~0.5 s of a warm start that no user pays twice.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, "-c", STARTUP_SCRIPT.format(dtype=dtype, path=path)]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:  # a file, not a pipe: a chatty child never blocks on it
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, env=env) as child:
            reported = child.stdout.readline()
            seconds = time.perf_counter() - start
            child.communicate()
        if child.returncode != 0:
            errors.seek(0)
            raise subprocess.CalledProcessError(child.returncode, command, reported, errors.read())
    float(reported)  # the child reported its result
    return seconds


def _measure(cases, X, y, rounds, progress, width):
    """{case: median seconds of its timed calls}: the cases of a group (timing_groups) are checked
    and warmed up (checked_run), then timed in turns (time_interleaved), ``rounds(case)`` rounds."""
    results = {}
    for group in timing_groups(cases):
        runs = {case: checked_run(case, X, y) for case in group}
        if progress:
            print(f"  {len(group)} cases of {'-'.join(map(str, group[0].sizes))}: checked; timing them in turns, "
                  f"{rounds(group[0])} rounds", file=sys.stderr)
        for case, times in time_interleaved(runs, rounds(group[0])).items():
            results[case] = statistics.median(times)
            if progress:
                print(f"  {case.group:{width}s} {case.label:22s}{results[case] * 1e3:9.1f} ms", file=sys.stderr)
    return results


def step_rounds(rounds, hidden):
    """Timed steps per case: ``rounds``, a quarter of them (at least 3) for layers wider than 10."""
    return rounds if hidden <= 10 else max(3, rounds // 4)


def measure(cases, X, y, rounds, progress=True):
    """{case: median seconds per step} for every case, after checking its agreement."""
    return _measure(cases, X, y, lambda c: step_rounds(rounds, c.hidden), progress, 28)


def measure_epochs(cases, X, y, rounds, progress=True):
    """{EpochCase: median seconds per epoch}, after checking each case's agreement."""
    return _measure(cases, X, y, lambda c: rounds, progress, 36)


def epoch_table(results, X):
    """Rows of (group, backend, ms/epoch, samples/s, speed-up over numpy in the same group)."""
    rows = []
    for case, seconds in results.items():
        base = results.get(type(case)("numpy", case.hidden, case.batch, case.dtype))
        rows.append((case.group, case.label, f"{seconds * 1e3:.1f}", f"{len(X) / seconds:,.0f}",
                     f"{base / seconds:.1f}x" if base else ""))
    return rows


def table(results, X):
    """Rows of (group, backend, ms/step, samples/s, speed-up over numpy float64 of the same shape,
    the hardware floor's share of the step)."""
    rows = []
    for case, seconds in results.items():
        n = case.n or len(X)
        base = results.get(Case("numpy", "float64", case.hidden, case.n))
        speedup = f"{base / seconds:.1f}x" if base else ""
        floor = floor_seconds(case, X)
        rows.append((case.group, case.label, f"{seconds * 1e3:.1f}", f"{n / seconds:,.0f}", speedup,
                     "" if floor is None else f"{floor / seconds:.0%}"))
    return rows


STEP_HEAD = ("case", "backend", "ms/step", "samples/s", "vs numpy f64", "floor reached")


def print_table(rows, markdown, head=STEP_HEAD):
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    for r in [head, *rows]:
        print("  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w) for i, (x, w) in enumerate(zip(r, widths))))


def bar_chart(results, path):
    from fastnet.plots import require_matplotlib, save_figure

    plt = require_matplotlib()
    cases = [c for c in results if c.n is None]
    labels = [f"{c.group}\n{c.label}" for c in cases]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(cases) + 1.5))
    ax.barh(labels, [results[c] * 1e3 for c in cases],
            color=["tab:orange" if c.backend == "numba" else "tab:blue" for c in cases])
    ax.invert_yaxis()
    ax.set_xlabel("ms per full-batch step (59,000 MNIST images; lower is better)")
    ax.set_title("fastnet backends on this machine")
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None):
    p = argparse.ArgumentParser(prog=prog_name("fastnet.bench"), description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", help="folder with MNIST (default: $FASTNET_DATA_DIR or ./data)")
    p.add_argument("--rounds", type=int, default=15, help="timed steps per case (hidden 128: a quarter)")
    p.add_argument("--quick", action="store_true", help="only the 784-10-10 cases")
    p.add_argument("--no-startup", action="store_true", help="skip the cold/warm start-up measurement")
    p.add_argument("--no-epochs", action="store_true", help="skip the mini-batch epoch cases")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown (for the README)")
    p.add_argument("--chart", metavar="PNG", help="also draw a bar chart")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if args.chart:  # fail now, not after minutes of timing
        from fastnet.plots import check_figure_path

        try:
            check_figure_path(args.chart, "--chart")
        except (ImportError, OSError, ValueError) as exc:
            print(f"fastnet: error: {exc}", file=sys.stderr)
            return 2

    from fastnet.data import load_mnist, split_dev

    mnist = load_mnist(args.data_dir)
    split = split_dev(mnist.train_images, mnist.train_labels, seed=0)
    X, y = split.X_train, split.y_train
    cases = MAIN_CASES + PEER_CASES + WIDE_CASES + SCALING_CASES
    if args.quick:  # the 784-10-10 cases on all the samples
        cases = [c for c in cases if c.hidden == 10 and c.n is None]
    for peer in sorted({c.backend for c in cases + EPOCH_CASES if missing_reason(c.backend)}):
        print(f"fastnet: skipping {peer}: {missing_reason(peer)}", file=sys.stderr)
    cases = [c for c in cases if not missing_reason(c.backend)]
    print(f"fastnet benchmark on {machine()}", file=sys.stderr)
    results = measure(cases, X, y, args.rounds)
    print(f"\nMedian of {args.rounds} full-batch steps per case ({step_rounds(args.rounds, 128)} at hidden 128) "
          f"on {len(X):,} MNIST training images (the seed split), after one untimed warm-up step; the cases of "
          f"one network timed in turns: per round, each case pauses, takes untimed steps for at least "
          f"{WARM_SECONDS:g} s, then a timed one. "
          f"{machine()}.\n")
    print_table(table(results, X), args.markdown)
    if clock_hz() is not None:
        print(f"\n\"floor reached\": the step's hardware floor divided by its time. The floor: the first "
              f"layer's 2 x nnz x H multiply-adds (forward and weight gradient over the non-zero pixels) at "
              f"{os.cpu_count()} cores x {FMA_UNITS} FMA units x {fma_bits()} bits a cycle x "
              f"{clock_hz() / 1e9:.2f} GHz.")
    if not args.no_epochs:
        epoch_cases = [c for c in EPOCH_CASES if not missing_reason(c.backend)]
        rounds = max(1, args.rounds // 5)
        epochs = measure_epochs(epoch_cases, X, y, rounds)
        print(f"\nMini-batch SGD: median of {rounds} epochs per case (the same shuffled order), after "
              f"one untimed epoch, the cases of one network and batch size timed in turns (as the steps); "
              f"speed-up over the numpy reference's epoch of the same case.\n")
        print_table(epoch_table(epochs, X), args.markdown, ("case", "backend", "ms/epoch", "samples/s", "vs numpy"))
    if not args.no_startup:
        for path in ("step", "epoch"):
            with tempfile.TemporaryDirectory() as cache:
                cold = startup_seconds(cache_dir=cache, path=path)
                warm = startup_seconds(cache_dir=cache, path=path)
            print(f"\nnumba start-up, process start to first float32 {path} finished: {cold:.1f} s with an "
                  f"empty kernel cache (compiling), {warm:.1f} s with a warm cache.")
    if args.chart:
        try:
            bar_chart(results, args.chart)
        except OSError as exc:  # checked at the start, but the disk may have filled up since
            print(f"fastnet: error: {exc}", file=sys.stderr)
            return 1
        print(f"drew {args.chart}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
