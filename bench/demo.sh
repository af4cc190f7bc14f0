#!/usr/bin/env bash
# demo.sh - from a fresh Debian machine to a running cueq demo, in one command.
#
# Installs the build dependencies that are missing (apt-get, as root or
# through sudo), builds the tree with CMake, starts build/bin/cueqd on its
# defaults with a fresh temp data dir (so a rerun starts clean), runs
# build/bin/cueq-demo against it, stops the broker, and exits with the
# demo's status.  The broker listens on $CUEQ_URL, else tcp://127.0.0.1:7700;
# if something already listens there, it says so and stops.
# Extra arguments go to cueq-demo (e.g. --jobs 50000 --workers 2).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
url=${CUEQ_URL:-tcp://127.0.0.1:7700}
export CUEQ_URL=$url

say() { printf '==> %s\n' "$*"; }
die() { printf 'demo.sh: %s\n' "$*" >&2; exit 1; }

# 1. Debian packages, only those dpkg does not report as installed.
packages=(build-essential cmake pkg-config libnng-dev librocksdb-dev liblz4-dev libmsgpack-dev libcmocka-dev
	libglib2.0-dev tzdata libsodium-dev)
missing=()
for p in "${packages[@]}"; do
	if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
		missing+=("$p")
	fi
done
if ((${#missing[@]} > 0)); then
	say "installing ${missing[*]}"
	if ((EUID == 0)); then
		apt-get update && apt-get install -y "${missing[@]}"
	elif command -v sudo >/dev/null; then
		sudo apt-get update && sudo apt-get install -y "${missing[@]}"
	else
		die "missing packages (${missing[*]}) and no sudo: install them as root"
	fi
fi

# 2. Build.
say "building in $root/build"
cmake -S "$root" -B "$root/build"
cmake --build "$root/build" -j"$(nproc)"
bin=$root/build/bin
[[ -x $bin/cueqd && -x $bin/cueq-demo ]] || die "the build did not produce cueqd and cueq-demo"

# 3. Is the address free?  Only tcp:// can be probed without the CLI.
if [[ $url =~ ^tcp://([^:/]+):([0-9]+)$ ]]; then
	host=${BASH_REMATCH[1]} port=${BASH_REMATCH[2]}
	if timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then
		die "something already listens on $host:$port; stop it, or choose another address with CUEQ_URL=tcp://127.0.0.1:PORT $0"
	fi
elif [[ -x $bin/cueq ]] && "$bin/cueq" ping >/dev/null 2>&1; then
	die "a broker already answers on $url; stop it, or set CUEQ_URL to another address"
fi

# 4. Start the broker; the trap stops it however this script ends.
work=$(mktemp -d "${TMPDIR:-/tmp}/cueq-demo.XXXXXX")
broker=
# shellcheck disable=SC2317  # called by the trap
cleanup() {
	if [[ -n $broker ]] && kill -0 "$broker" 2>/dev/null; then
		kill -TERM "$broker" 2>/dev/null || true
		for _ in $(seq 100); do
			kill -0 "$broker" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$broker" 2>/dev/null || true
		wait "$broker" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting cueqd on $url (data in $work/data)"
"$bin/cueqd" --data "$work/data" --listen "$url" >"$work/cueqd.log" 2>&1 &
broker=$!

# 5. Wait until it answers (the CLI's ping if built; else cueq-demo retries).
if [[ -x $bin/cueq ]]; then
	for i in $(seq 100); do
		"$bin/cueq" ping >/dev/null 2>&1 && break
		if ! kill -0 "$broker" 2>/dev/null; then
			cat "$work/cueqd.log" >&2
			die "cueqd exited at start (its log is above)"
		fi
		((i < 100)) || { cat "$work/cueqd.log" >&2; die "cueqd did not answer a ping within 10 s"; }
		sleep 0.1
	done
fi

# 6. The demo.
say "running cueq-demo $*"
status=0
"$bin/cueq-demo" --url "$url" "$@" || status=$?
if ((status != 0)); then
	printf 'demo.sh: cueq-demo failed (exit %d); last lines of the broker log:\n' "$status" >&2
	tail -n 20 "$work/cueqd.log" >&2 || true
fi
exit "$status"
