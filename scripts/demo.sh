#!/usr/bin/env bash
# demo.sh - set up and run the main job: build mignificent and run an
# unmodified CUDA program through the shim on a fresh GPU server.  Uses the
# GPU when the machine has an NVIDIA driver, otherwise the host test double.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
export PATH=/usr/local/cuda/bin:$PATH
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build

if [[ -n ${MIG_BACKEND:-} ]]; then
	backend=$MIG_BACKEND
elif ldconfig -p 2>/dev/null | grep -q 'libcuda.so.1 ' && nvidia-smi -L >/dev/null 2>&1; then
	backend=cuda
else
	backend=host
	export MIG_HOST_KERNELS=$PWD/build/lib/libmig_test_kernels.so
	echo "demo: no NVIDIA GPU here; using the host test-double backend" >&2
fi
exec build/bin/mig run --backend "$backend" -- build/tests/cuda/smoke_static
