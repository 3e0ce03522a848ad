#!/usr/bin/env bash
# bench/containment/run.sh - fault containment between tenants on one GPU.
# Tenant "victim" runs examples/burn continuously; tenant "attacker", on the
# same GPU, makes its kernel fault (illegal address) and then runs one that
# never ends (stopped by its 3 s invocation timeout).  Every invocation of
# the victim must succeed with the right answer, and the attacker's
# instance must be replaced, not the victim's.  (With MPS, one client's
# fault ends every client's context.)
# Usage: bench/containment/run.sh [--backend host]   (from the repo root)
set -uo pipefail
B=${BUILD_DIR:-build}
MIG=$B/bin/mig
backend=${1:-}
[[ $backend == --backend ]] && backend=$2 || backend=cuda
dir=$(mktemp -d /tmp/mig-containment.XXXXXX)
cat >"$dir/config.json" <<JSON
{"tenants": [{"name": "victim", "token": "victim-token-0123456789"},
             {"name": "attacker", "token": "attacker-token-0123456789"}]}
JSON
"$B/bin/mignificentd" --config "$dir/config.json" --backend "$backend" \
	--data-dir "$dir/data" --listen 127.0.0.1:18111 >"$dir/daemon.log" 2>&1 &
daemon=$!
export MIG_SERVER=http://127.0.0.1:18111
for _ in $(seq 100); do "$MIG" --token victim-token-0123456789 devices >/dev/null 2>&1 && break; sleep 0.1; done
env_args=()
[[ $backend == host ]] && env_args=(--env "MIG_HOST_KERNELS=$PWD/$B/examples/libburn_kernels.so")
for t in victim attacker; do
	"$MIG" --token "$t-token-0123456789" deploy burn --language c \
		--artifact "$B/examples/libburn.so" --handler burn --timeout-ms 3000 \
		"${env_args[@]}" >/dev/null
done
V=(--token victim-token-0123456789)
A=(--token attacker-token-0123456789)
want=$("$MIG" "${V[@]}" invoke burn --data 100000)
echo "victim, before: $want"
"$MIG" "${A[@]}" invoke burn --data 100000 >/dev/null
before=$("$MIG" "${A[@]}" ls | awk '$2 == "burn" { print $1 }' | sort | tr '\n' ' ')

# The victim invokes continuously while the attacker misbehaves.
"$MIG" "${V[@]}" bench burn -c 1 -n 2500 --data 100000 --csv "$dir/victim.csv" \
	>"$dir/victim.txt" 2>&1 &
bench=$!
sleep 0.5
echo "attacker, fault: $("$MIG" "${A[@]}" invoke burn --data fault 2>&1)"
echo "attacker, runaway kernel: $("$MIG" "${A[@]}" invoke burn --data spin 2>&1)"
echo "attacker, afterwards: $("$MIG" "${A[@]}" invoke burn --data 100000 -v 2>&1 | grep -E 'X-Mig-Cold:|iters')"
wait $bench
after=$("$MIG" "${A[@]}" ls | awk '$2 == "burn" { print $1 }' | sort | tr '\n' ' ')
check=$("$MIG" "${V[@]}" invoke burn --data 100000)
echo "victim, after: $check"
echo "--- victim's invocations while the attacker faulted and spun:"
tail -2 "$dir/victim.txt"
echo "attacker's instances before: $before; after: $after"
"$MIG" "${V[@]}" ls | sed -n '/INSTANCE/,$p'
kill -TERM $daemon
wait $daemon
echo "daemon exit status $?"
[[ $check == "$want" ]] && echo "victim's answer unchanged: yes" || echo "victim's answer unchanged: NO"
