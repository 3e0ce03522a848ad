#!/usr/bin/env bash
# demo.sh - set up and run the main job: build mignificent, start the node
# daemon with its embedded defaults, deploy the bundled example function
# (a C function that adds two vectors on the GPU) and invoke it over HTTP.
# Without an NVIDIA GPU it says so and uses the host test double instead.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
export PATH=/usr/local/cuda/bin:$PATH
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build

export MIG_DATA_DIR=${MIG_DATA_DIR:-$(mktemp -d /tmp/mignificent-demo.XXXXXX)}
export MIG_SERVER=http://127.0.0.1:10000
args=(--data-dir "$MIG_DATA_DIR")
env_args=()
if ! nvidia-smi -L >/dev/null 2>&1; then
	echo "demo: this machine has no NVIDIA GPU (nvidia-smi found none):" \
	     "running on the host test double, not a GPU" >&2
	args+=(--backend host)
	env_args=(--env "MIG_HOST_KERNELS=$PWD/build/examples/libhello_kernels.so")
fi

build/bin/mignificentd "${args[@]}" &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT
for _ in $(seq 50); do
	build/bin/mig devices >/dev/null 2>&1 && break
	sleep 0.1
done

build/bin/mig devices
build/bin/mig deploy hello --language c --artifact build/examples/libhello.so \
	--handler hello "${env_args[@]}"
echo "--- cold invocation"
build/bin/mig invoke hello --data 1048576 -v; echo
echo "--- warm invocation"
build/bin/mig invoke hello --data 1048576 -v; echo
