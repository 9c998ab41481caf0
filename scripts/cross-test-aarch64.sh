#!/usr/bin/env bash
# Cross-compiles the CPU kernels and their tests for aarch64 (NEON + dotprod, as on Jetson Orin)
# and runs every kernel test binary under qemu-user. Correctness only: timings under qemu mean
# nothing. Usage: scripts/cross-test-aarch64.sh [build dir, default build-cross-aarch64]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build-cross-aarch64}
sysroot=/usr/aarch64-linux-gnu
qemu=(qemu-aarch64 -cpu max -L "$sysroot")

if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  echo "cross-test: installing g++-aarch64-linux-gnu and qemu-user"
  if [ "$(id -u)" -eq 0 ]; then sudo=(env DEBIAN_FRONTEND=noninteractive); else sudo=(sudo env DEBIAN_FRONTEND=noninteractive); fi
  "${sudo[@]}" apt-get install -y g++-aarch64-linux-gnu qemu-user ||
    { "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y g++-aarch64-linux-gnu qemu-user; }
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
cmake -S tests/cross -B "$build_dir" "${generator[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchain-aarch64.cmake"
mapfile -t tests < "$build_dir/cross_tests.txt"
# Plus targets only compiled, not run (bench/packed_bench.cpp: no aarch64 libbenchmark to link).
mapfile -t compile_only < "$build_dir/cross_compile_only.txt"
cmake --build "$build_dir" --target "${tests[@]}" "${compile_only[@]}" -j2

# EnvSwitchForcesReference re-runs its own binary through /bin/sh, which cannot start an aarch64
# program without binfmt_misc; its child check runs directly under qemu below instead.
failed=()
for t in "${tests[@]}"; do
  echo "=== $t (qemu-aarch64 -cpu max)"
  filter=()
  [ "$t" = mul_mat_test ] && filter=(--gtest_filter=-MulMatDispatch.EnvSwitchForcesReference)
  [ "$t" = neon_dispatch_test ] && filter=(--gtest_filter=-NoDotprod.*)
  if ! "${qemu[@]}" "$build_dir/$t" --gtest_brief=1 "${filter[@]}"; then failed+=("$t"); fi
done
if [[ " ${tests[*]} " == *" mul_mat_test "* ]]; then
  echo "=== mul_mat_test with EDGELLM_FORCE_REF=1"
  EDGELLM_FORCE_REF=1 "${qemu[@]}" "$build_dir/mul_mat_test" --gtest_brief=1 \
    --gtest_filter=MulMatDispatch.DISABLED_EnvForcesReferenceChild --gtest_also_run_disabled_tests ||
    failed+=("mul_mat_test(EDGELLM_FORCE_REF=1)")
fi

# A core without dotprod (Cortex-A72, e.g. Raspberry Pi 4) must fall back to the generic table:
# the quick suites again there, leaving out the tests that need the NEON table or a packed gemm
# (filtered, not skipped), plus the check that the generic table is the one dispatched.
declare -A a72_filter=(
  [ops_test]='*'
  [packed_test]='-PackedDispatch.SizeIsZeroWhenNotPackedAndPublicProductMatches:PackedDispatch.PackingInSlicesOfGroupsEqualsPackingTheWholeMatrix:PackedDispatch.LegacyGemmsComputeWhatThePerRowDotsCompute:PackedDispatch.EveryGemmIsIndependentOfItsTokenTile:PackedDispatch.AKQuantTokensResultDoesNotDependOnTheBatch:PackedDispatch.EveryThreadCountWritesEveryRowWithTheSameBits'
  [neon_dispatch_test]='NoDotprod.*'
)
for t in ops_test packed_test neon_dispatch_test; do
  [[ " ${tests[*]} " == *" $t "* ]] || continue
  echo "=== $t (qemu-aarch64 -cpu cortex-a72, no dotprod)"
  qemu-aarch64 -cpu cortex-a72 -L "$sysroot" "$build_dir/$t" --gtest_brief=1 \
    "--gtest_filter=${a72_filter[$t]}" || failed+=("$t(cortex-a72)")
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "cross-test aarch64: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "cross-test aarch64: all ${#tests[@]} kernel test binaries passed under qemu"
