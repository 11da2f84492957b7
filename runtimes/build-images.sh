#!/usr/bin/env bash
# build-images.sh - builds the container runner's images from this host's
# own interpreters, without any registry (docs/functions.md, "Container
# runner"): a root file system holding the interpreter and the shared
# libraries ldd lists (plus, for Python, its standard library), imported
# with `podman import` / `docker import`.
#
#   runtimes/build-images.sh [--engine podman|docker] [--if-missing]
#                            [node] [python]
#
# Images: alyx-node:local (node from PATH, or $ALYX_IMAGE_NODE) and
# alyx-python:local (/usr/bin/python3 when present, else python3 from PATH,
# or $ALYX_IMAGE_PYTHON).  The executors are not in the images: libalyx
# mounts runtimes/ read-only into each container.
# --engine defaults to podman when installed, else docker; the engine CLI
# honours CONTAINER_HOST / DOCKER_HOST as usual.  --if-missing skips an
# image that already exists.
set -euo pipefail

engine=""
if_missing=0
which=()
while [ $# -gt 0 ]; do
	case "$1" in
	--engine) engine=$2; shift 2 ;;
	--if-missing) if_missing=1; shift ;;
	node|python) which+=("$1"); shift ;;
	*) echo "usage: $0 [--engine podman|docker] [--if-missing] [node] [python]" >&2; exit 2 ;;
	esac
done
[ ${#which[@]} -gt 0 ] || which=(node python)
if [ -z "$engine" ]; then
	if command -v podman >/dev/null; then engine=podman; else engine=docker; fi
fi
command -v "$engine" >/dev/null || { echo "build-images: $engine is not installed" >&2; exit 1; }

image_exists() {
	"$engine" image inspect "$1" >/dev/null 2>&1
}

work=$(mktemp -d /tmp/alyx-images-XXXXXX)
trap 'rm -rf "$work"' EXIT

# copy_with_libs ROOT FILE...: copies each file (at its real path) and the
# libraries ldd resolves for it.
copy_with_libs() {
	local root=$1 f lib
	shift
	for f in "$@"; do
		mkdir -p "$root$(dirname "$f")"
		cp -L "$f" "$root$f"
		for lib in $(ldd "$f" 2>/dev/null | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
			[ -e "$root$lib" ] && continue
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib"
		done
	done
}

base_fs() {
	local root=$1
	mkdir -p "$root"/{etc,tmp,proc,dev,sys,run,usr/bin}
	chmod 1777 "$root/tmp"
	echo 'root:x:0:0:root:/tmp:/bin/false' > "$root/etc/passwd"
	echo 'nobody:x:65534:65534:nobody:/tmp:/bin/false' >> "$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
	printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
	echo '127.0.0.1 localhost' > "$root/etc/hosts"
}

import() {
	local root=$1 name=$2 cmd=$3
	tar -C "$root" -cf "$work/${name%%:*}.tar" .
	"$engine" rmi -f "$name" >/dev/null 2>&1 || true
	if ! "$engine" import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
		--change "CMD [\"$cmd\"]" "$work/${name%%:*}.tar" "$name" \
		>"$work/import.log" 2>&1; then
		cat "$work/import.log" >&2
		exit 1
	fi
	echo "build-images: $name ($(du -h "$work/${name%%:*}.tar" | cut -f1)) from $4"
}

build_node() {
	local root=$work/node node
	node=$(readlink -f "$(command -v "${ALYX_IMAGE_NODE:-node}")")
	base_fs "$root"
	copy_with_libs "$root" "$node"
	[ "$node" = /usr/bin/node ] || ln -s "$node" "$root/usr/bin/node"
	import "$root" alyx-node:local node "$node"
}

build_python() {
	local root=$work/python py stdlib dynload
	py=${ALYX_IMAGE_PYTHON:-}
	[ -n "$py" ] || { [ -x /usr/bin/python3 ] && py=/usr/bin/python3; } || py=python3
	py=$(readlink -f "$(command -v "$py")")
	stdlib=$("$py" -I -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
	dynload=$("$py" -I -c 'import sysconfig; print(sysconfig.get_config_var("DESTSHARED") or "")')
	base_fs "$root"
	copy_with_libs "$root" "$py"
	mkdir -p "$root$stdlib"
	# The standard library without tests, GUI, packaging and caches.
	tar -C "$stdlib" --exclude=__pycache__ --exclude=site-packages \
		--exclude=dist-packages --exclude=./test --exclude=./idlelib \
		--exclude=./tkinter --exclude=./turtledemo --exclude=./ensurepip \
		--exclude=./lib2to3 --exclude='./config-*' -cf - . |
		tar -C "$root$stdlib" -xf -
	if [ -n "$dynload" ] && [ -d "$dynload" ]; then
		mkdir -p "$root$dynload"
		cp -L "$dynload"/*.so "$root$dynload/" 2>/dev/null || true
		copy_with_libs "$root" "$dynload"/*.so
	fi
	[ "$py" = /usr/bin/python3 ] || ln -sf "$py" "$root/usr/bin/python3"
	import "$root" alyx-python:local python3 "$py"
}

for w in "${which[@]}"; do
	if [ $if_missing = 1 ] && image_exists "alyx-$w:local"; then
		continue
	fi
	"build_$w"
done
