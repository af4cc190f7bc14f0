#!/usr/bin/env bash
# Runs the whole cueq test suite on a fresh Debian machine:
#   tests/run.sh [BUILD_DIR]          (default: build)
# Installs the Debian packages the build needs when any is missing (as root,
# or through sudo), configures BUILD_DIR with extra cmake arguments from
# $CUEQ_CMAKE_ARGS (e.g. -DCUEQ_SANITIZE=address,undefined), builds with one
# job per core and runs ctest.  Exits non-zero when anything fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(dirname "$here")"
build="${1:-build}"

packages=(build-essential cmake pkg-config libnng-dev librocksdb-dev liblz4-dev libmsgpack-dev libcmocka-dev
	libglib2.0-dev tzdata libsodium-dev libhiredis-dev libpq-dev openssl dpkg-dev file python3
	libmicrohttpd-dev libjansson-dev curl jq prometheus chromium)
# The browser test runs on Node.js: Debian's, unless a node and npm are
# on the PATH already (e.g. a newer Node.js installed from elsewhere).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	packages+=(nodejs npm)
fi
missing=()
for p in "${packages[@]}"; do
	if ! dpkg -s "$p" >/dev/null 2>&1; then
		missing+=("$p")
	fi
done
if ((${#missing[@]})); then
	echo "run.sh: installing ${missing[*]}" >&2
	if [[ $(id -u) -eq 0 ]]; then
		sudo=()
	elif command -v sudo >/dev/null; then
		sudo=(sudo)
	else
		echo "run.sh: missing packages ${missing[*]} and not root (no sudo)" >&2
		exit 1
	fi
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

# puppeteer-core for the browser test, as its package-lock.json pins it.
if [[ ! -d "$here/browser/node_modules" ]]; then
	npm ci --prefix "$here/browser" --no-audit --no-fund --loglevel=error
fi

# shellcheck disable=SC2086 # CUEQ_CMAKE_ARGS is a list of arguments
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CUEQ_CMAKE_ARGS:-}
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j2
