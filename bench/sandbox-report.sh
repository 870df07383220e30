#!/usr/bin/env bash
# Run the lode-sandbox criterion benchmarks, then print a table of medians and
# the ratios that matter (sandbox/native with and without fuel metering, fuel
# cost, per-unit overhead, units per second).
#
#   bench/sandbox-report.sh            # full run (a few minutes)
#   bench/sandbox-report.sh --report   # only print the table from the last run
#   LODE_BENCH_QUICK=1 bench/sandbox-report.sh   # smoke run with small inputs
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" != "--report" ]]; then
    cargo bench -p lode-sandbox --bench sandbox
fi

python3 - <<'PY'
import json, os, platform, subprocess

root = "target/criterion"

def median_ns(*parts):
    path = os.path.join(root, *parts, "new", "estimates.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]

def fmt(ns):
    if ns is None:
        return "n/a"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.2f} us"

cpu = "unknown CPU"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
print(f"machine: {cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}")
try:
    print("load average at report time:", open("/proc/loadavg").read().split()[:3])
except OSError:
    pass

print("\n## Per-unit overhead (instantiate + run + collect), median")
for name in ["empty_module", "hello_c", "hello_c_with_compile_cache_lookup"]:
    print(f"  unit/{name:40s} {fmt(median_ns('unit', name))}")

spawn = median_ns("job", "spawn_native")
print(f"\n## Jobs (median of 10 samples); native process start-up: {fmt(spawn)}")
print(f"  {'job':12s} {'native':>10s} {'wasm+fuel':>10s} {'wasm':>10s} {'fuel/native':>12s} {'nofuel/native':>14s} {'fuel/nofuel':>12s}")
for job in ["sha256", "primes", "nbody", "mandelbrot", "wordcount"]:
    native = median_ns("job", job, "native")
    on = median_ns("job", job, "wasm_fuel")
    off = median_ns("job", job, "wasm_nofuel")
    def ratio(a, b):
        return f"{a / b:.2f}x" if a and b else "n/a"
    # Native time without process start-up, for a like-for-like kernel time.
    native_k = native - spawn if native and spawn else native
    print(f"  {job:12s} {fmt(native):>10s} {fmt(on):>10s} {fmt(off):>10s} {ratio(on, native_k):>12s} {ratio(off, native_k):>14s} {ratio(on, off):>12s}")
print("  (ratios use native time minus process start-up)")

print("\n## Throughput: trivial units (hello) per second, one sandbox")
for t in ["1_threads", "2_threads"]:
    ns = median_ns("throughput", "hello_x256", t)
    if ns:
        print(f"  {t:10s} {256 / (ns / 1e9):10.0f} units/s  ({fmt(ns / 256)} per unit)")
PY
