#!/usr/bin/env bash
# test.sh - the whole test suite, as CI runs it (no GPU needed):
#   1. install what is missing;
#   2. build with -Wall -Wextra -Werror;
#   3. unit tests (cmocka, through ctest);
#   4. the pytest suite: unmodified CUDA programs (static and shared
#      runtime) through `mig run`, and the daemon over real HTTP with real
#      executor and GPU-server processes, against the host test double;
#   5. the same suite with mig-gpud and mignificentd built with
#      AddressSanitizer + UBSan;
#   6. the fuzz target of the server's message decoder, for a while.
# With MIG_TEST_BACKEND=cuda (on a GPU machine) step 4 runs against the real
# driver and the GPU-only tests (third-party clients, the daemon on the GPU)
# run too.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
export PATH=/usr/local/cuda/bin:$PATH
jobs=$(nproc)
fuzz_seconds=${MIG_FUZZ_SECONDS:-120}
backend=${MIG_TEST_BACKEND:-host}

step() { printf '\n=== %s\n' "$*"; }

step "build (release, -Werror)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIG_WERROR=ON >/dev/null
ninja -C build -j "$jobs"

step "unit tests"
ctest --test-dir build --output-on-failure -j "$jobs"

step "pytest suite: remoting and daemon ($backend backend)"
pytest_run() {
	set +e
	.venv/bin/pytest -q -p no:cacheprovider "$@"
	rc=$?
	set -e
	# Exit code 5 means no tests were collected: that is a failure here.
	if [[ $rc -eq 5 ]]; then
		echo "test.sh: pytest collected no tests" >&2
		exit 1
	fi
	[[ $rc -eq 0 ]] || exit $rc
}
MIG_TEST_BACKEND=$backend pytest_run tests

step "pytest suite, mig-gpud and mignificentd under AddressSanitizer + UBSan"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMIG_SANITIZE=ON \
	-DMIG_BUILD_CUDA_TESTS=OFF >/dev/null
ninja -C build-asan -j "$jobs"
# The export check is about the release shim (ASan adds its own symbols).
ctest --test-dir build-asan --output-on-failure -j "$jobs" -E shim_exports
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
MIG_GPUD=$PWD/build-asan/bin/mig-gpud MIG_TEST_BACKEND=$backend pytest_run tests

step "fuzzing the server's message decoder (${fuzz_seconds}s)"
CC=clang cmake -S . -B build-fuzz -G Ninja -DMIG_FUZZ=ON >/dev/null
ninja -C build-fuzz -j "$jobs" fuzz_gpud_ring
mkdir -p build-fuzz/corpus
build-fuzz/bin/fuzz_gpud_ring -max_total_time="$fuzz_seconds" -rss_limit_mb=4096 \
	-print_final_stats=1 build-fuzz/corpus tests/fuzz/corpus

step "all tests passed"
