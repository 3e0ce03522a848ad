#!/usr/bin/env bash
# bench/multigpu/run.sh - mignificentd across every GPU of a node vs the same
# run restricted to one GPU, with the compute-bound examples/burn function:
#   1. `mig devices` next to nvidia-smi's list (UUIDs, memory);
#   2. 4 instances, and which GPU each GPU server's context is on
#      (nvidia-smi's compute-process list);
#   3. `mig bench` with 4 clients, all GPUs vs GPU 0 only: the throughput ratio;
#   4. a GPU fault in one instance while the others keep serving.
# Needs a GPU node; run from the repository root after building.
set -uo pipefail
B=${BUILD_DIR:-build}
ITERS=${ITERS:-4194304}   # ~20 ms per invocation on an H100/H200
N=${REQUESTS:-12}         # per client
MIG=$B/bin/mig

start_daemon() { # dir port [devices]
	rm -rf "$1"
	mkdir -p "$1"
	"$B/bin/mignificentd" --backend cuda --data-dir "$1" --listen "127.0.0.1:$2" \
		${3:+--devices "$3"} >"$1.log" 2>&1 &
	DAEMON=$!
	export MIG_SERVER=http://127.0.0.1:$2 MIG_DATA_DIR=$1
	for _ in $(seq 100); do "$MIG" devices >/dev/null 2>&1 && break; sleep 0.1; done
}

stop_daemon() {
	kill -TERM "$DAEMON"
	wait "$DAEMON"
	echo "daemon exit status $?"
}

deploy_and_warm() {
	"$MIG" deploy burn --language c --artifact "$B/examples/libburn.so" --handler burn \
		--max-instances 4 --gpu-memory 1GiB >/dev/null
	sleep 2 # let the pool's GPU servers create their contexts
	"$MIG" bench burn -c 4 -n 2 --data "$ITERS" >/dev/null 2>&1
}

throughput() { # the REQ/S column of mig bench's summary row
	"$MIG" bench burn -c 4 -n "$N" --data "$ITERS" 2>/dev/null | tee /dev/stderr |
		awk '$1 == "burn" { print $10 }'
}

echo "== nvidia-smi"
nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader
ngpu=$(nvidia-smi -L | wc -l)

echo "== all $ngpu GPUs"
start_daemon /tmp/mig-multigpu-all 18101
"$MIG" devices
deploy_and_warm
"$MIG" ls | sed -n '/INSTANCE/,$p'
echo "-- GPU servers by GPU (nvidia-smi compute processes)"
nvidia-smi --query-compute-apps=pid,gpu_uuid,process_name --format=csv,noheader
all=$(throughput)
echo "-- a GPU fault in one instance"
"$MIG" invoke burn --data fault; echo
faults_after=$("$MIG" bench burn -c 4 -n 4 --data "$ITERS" 2>/dev/null | awk '$1 == "burn" { print $4 }')
echo "errors among 16 invocations after the fault: $faults_after"
stop_daemon

echo "== GPU 0 only"
start_daemon /tmp/mig-multigpu-one 18102 0
"$MIG" devices
deploy_and_warm
one=$(throughput)
stop_daemon
pgrep -l 'mig-(gpud|exec)' || echo "no mig processes left"

echo "== result"
awk -v a="$all" -v o="$one" -v n="$ngpu" 'BEGIN {
	printf "throughput, 4 clients: %d GPUs %.1f/s, 1 GPU %.1f/s, ratio %.2fx (target >= 1.8x for 2 GPUs)\n",
	       n, a, o, (o > 0 ? a / o : 0) }'
