#!/usr/bin/env bash
# Rebuild the committed example work units (WASI preview1 command modules).
#
#   examples/jobs/build.sh            # rebuild every src/*.c into wasm/*.wasm
#   examples/jobs/build.sh --native   # also build native binaries into native/ (gitignored)
#
# Needs clang with the wasm32-wasi target and wasi-libc
# (Debian/Ubuntu: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32).
# CLANG, NATIVE_CC and WASI_SYSROOT may be set to override the tools.
set -euo pipefail
cd "$(dirname "$0")"

CLANG=${CLANG:-clang}
NATIVE_CC=${NATIVE_CC:-cc}
SYSROOT_ARGS=()
if [[ -n "${WASI_SYSROOT:-}" ]]; then SYSROOT_ARGS=(--sysroot="$WASI_SYSROOT"); fi

# -O2 for speed, -s strips names and debug info (smaller, and identical bytes
# on every rebuild with the same toolchain). No FMA contraction anywhere so the
# floating-point jobs round exactly like the native builds.
WASM_FLAGS=(--target=wasm32-wasi "${SYSROOT_ARGS[@]}" -O2 -s -ffp-contract=off -Wall -Wextra -Werror)
NATIVE_FLAGS=(-O2 -ffp-contract=off -Wall -Wextra -Werror)

mkdir -p wasm hostile
for src in src/*.c; do
    name=$(basename "$src" .c)
    "$CLANG" "${WASM_FLAGS[@]}" -o "wasm/$name.wasm" "$src"
    echo "built wasm/$name.wasm ($(wc -c <"wasm/$name.wasm") bytes)"
done
for src in hostile/*.c; do
    name=$(basename "$src" .c)
    "$CLANG" "${WASM_FLAGS[@]}" -o "hostile/$name.wasm" "$src"
    echo "built hostile/$name.wasm ($(wc -c <"hostile/$name.wasm") bytes)"
done

if [[ "${1:-}" == "--native" ]]; then
    mkdir -p native
    for src in src/*.c; do
        name=$(basename "$src" .c)
        "$NATIVE_CC" "${NATIVE_FLAGS[@]}" -o "native/$name" "$src" -lm
        echo "built native/$name"
    done
fi
