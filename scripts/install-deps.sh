#!/usr/bin/env bash
# install-deps.sh - everything mignificent needs on a fresh Debian 12 machine
# that already has the CUDA 13 toolkit (nvcc, headers) under /usr/local/cuda.
# Runs apt-get only for what is missing; needs root for that.
set -euo pipefail

pkgs=(build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
      libcmocka-dev libcurl4-openssl-dev libjansson-dev libmicrohttpd-dev python3 python3-pip
      python3-venv libseccomp-dev crun)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: missing packages: ${missing[*]} (run as root)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v nvcc >/dev/null && [[ ! -x /usr/local/cuda/bin/nvcc ]]; then
	echo "install-deps: the CUDA toolkit (nvcc) is not installed; install CUDA 13" >&2
	exit 1
fi

# pytest for the test suite, into a private virtual environment.
venv=${MIG_VENV:-.venv}
if [[ ! -x $venv/bin/pytest ]]; then
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q 'pytest>=7,<9'
fi
