#!/usr/bin/env bash
# install_test.sh BUILD_DIR SOURCE_DIR CC "CFLAGS" - the installed tree as a
# user gets it: `cmake --install` into a temp prefix puts the broker, the
# CLI, libcueq (shared and static), the headers, pkg-config and CMake
# files, the man pages and the systemd unit in place; a small program is
# built against it through pkg-config (shared and static) and through
# find_package(cueq), and each runs against the installed cueqd; then
# `cpack -G DEB` makes a .deb holding the same.
set -euo pipefail
build=$1 src=$2 cc=$3 cflags=$4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cueq-install.XXXXXX")
pid=""
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "install_test: $*" >&2
	exit 1
}

cmake --install "$build" --prefix "$tmp/usr" >"$tmp/install.log" || {
	cat "$tmp/install.log" >&2
	fail "cmake --install failed"
}
p=$tmp/usr
lib=$p/lib
[[ -d $p/lib64 ]] && lib=$p/lib64
[[ -d $lib/$(gcc -print-multiarch 2>/dev/null || echo none) ]] && lib=$lib/$(gcc -print-multiarch)
for f in bin/cueqd bin/cueq include/cueq/cueq.h include/cueq/defs.h \
	lib/systemd/system/cueqd.service share/man/man8/cueqd.8 share/man/man1/cueq.1 \
	share/man/man3/libcueq.3; do
	[[ -e $p/$f ]] || fail "$f is not installed"
done
for f in libcueq.so libcueq.a pkgconfig/cueq.pc cmake/cueq/cueqConfig.cmake \
	cmake/cueq/cueqConfigVersion.cmake cmake/cueq/cueqTargets.cmake; do
	[[ -e $lib/$f ]] || fail "${lib#"$p"/}/$f is not installed"
done
grep -q '^\.TH CUEQD 8' "$p/share/man/man8/cueqd.8" || fail "cueqd.8 is no man page"
unit=$p/lib/systemd/system/cueqd.service
for want in "ExecStart=$p/bin/cueqd " DynamicUser=yes StateDirectory=cueq \
	NoNewPrivileges=yes ProtectSystem=strict; do
	grep -q "^$want" "$unit" || fail "cueqd.service lacks $want"
done
"$p/bin/cueqd" --version >/dev/null || fail "the installed cueqd does not run"

# shellcheck disable=SC2086 # cflags is a list of flags
export PKG_CONFIG_PATH=$lib/pkgconfig
$cc $cflags "$src/tests/install/hello.c" -o "$tmp/hello-pc" $(pkg-config --cflags --libs cueq) ||
	fail "hello.c does not build with pkg-config"
# shellcheck disable=SC2086
$cc $cflags "$src/tests/install/hello.c" -o "$tmp/hello-static" $(pkg-config --cflags cueq) \
	-Wl,-Bstatic -L"$lib" -lcueq -Wl,-Bdynamic $(pkg-config --static --libs-only-l cueq | sed 's/-lcueq//') ||
	fail "hello.c does not build against libcueq.a"
if ldd "$tmp/hello-static" | grep -q libcueq; then
	fail "hello-static still loads libcueq.so"
fi
CC=$cc cmake -S "$src/tests/install" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$p" \
	-DCMAKE_C_FLAGS="$cflags" >"$tmp/cm.log" 2>&1 || {
	cat "$tmp/cm.log" >&2
	fail "find_package(cueq) failed"
}
cmake --build "$tmp/cm" >>"$tmp/cm.log" 2>&1 || {
	cat "$tmp/cm.log" >&2
	fail "hello does not build with find_package(cueq)"
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=tcp://127.0.0.1:$port
"$p/bin/cueqd" --data "$tmp/data" --listen "$url" --http off >"$tmp/cueqd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	LD_LIBRARY_PATH=$lib "$p/bin/cueq" --url "$url" --timeout 1s ping >/dev/null 2>&1 && break
	sleep 0.1
done
for prog in "$tmp/hello-pc" "$tmp/hello-static" "$tmp/cm/hello"; do
	out=$(LD_LIBRARY_PATH=$lib "$prog" "$url") || fail "${prog#"$tmp"/} failed: $out"
	[[ $out =~ ^hello:\ [0-9a-f]{16}\ succeeded\ done$ ]] || fail "${prog#"$tmp"/} said: $out"
done

# the .deb (dpkg-shlibdeps reads the dependencies of the binaries)
(cd "$build" && cpack -G DEB -B "$tmp/deb") >"$tmp/cpack.log" 2>&1 || {
	cat "$tmp/cpack.log" >&2
	fail "cpack -G DEB failed"
}
deb=$(ls "$tmp"/deb/*.deb)
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/cueqd ./usr/bin/cueq ./usr/include/cueq/cueq.h ./usr/lib/systemd/system/cueqd.service \
	./usr/share/man/man8/cueqd.8; do
	grep -q " $f\$" <<<"$contents" || fail "the .deb lacks $f"
done
grep -q 'libcueq.so' <<<"$contents" || fail "the .deb lacks libcueq.so"
deps=$(dpkg-deb -f "$deb" Depends)
grep -q librocksdb <<<"$deps" || fail "the .deb's Depends lack RocksDB: $deps"
echo "install_test: installed tree, pkg-config (shared, static), find_package(cueq) and $(basename "$deb") ok"
