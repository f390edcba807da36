#!/usr/bin/env bash
# install-onnxruntime.sh installs the ONNX Runtime 1.30.0 shared library used by the CPU
# backend (engine/ort) into a project-local folder.
#
# Usage: bash build/install-onnxruntime.sh [DEST_DIR]
#
# DEST_DIR defaults to <repository>/.deps/onnxruntime. The library is taken from the npm
# package onnxruntime-node@1.30.0, fetched with `npm pack` and unpacked with `tar`; `npm
# install` is never used because the package's post-install step downloads from a host that
# these machines cannot reach. The extracted file is checked against a pinned size and
# SHA-256 before it is put in place. Running the script again when the library is already
# installed and intact does nothing. Needs npm (Debian: apt-get install -y npm), tar, gzip
# and sha256sum.
set -euo pipefail

readonly ORT_VERSION=1.30.0
readonly NPM_PACKAGE="onnxruntime-node@${ORT_VERSION}"
readonly LIB_NAME=libonnxruntime.so.1

die() {
	echo "install-onnxruntime: $*" >&2
	exit 1
}

# Pinned digests of the library inside the npm tarball, per architecture.
case "$(uname -m)" in
x86_64 | amd64)
	arch=x64
	want_size=45828512
	want_sha=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
	;;
aarch64 | arm64)
	arch=arm64
	want_size=25135496
	want_sha=1f549d46250b005580b597f4164984aaf75b3bcb9f3aeb07c7f8a8fe60b23c76
	;;
*)
	die "no ONNX Runtime ${ORT_VERSION} build for machine type $(uname -m) in ${NPM_PACKAGE}"
	;;
esac
readonly member="package/bin/napi-v6/linux/${arch}/${LIB_NAME}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-${repo_root}/.deps/onnxruntime}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
target="${dest}/${LIB_NAME}"

# verify FILE: succeed when FILE has the pinned size and digest.
verify() {
	local size sha
	size="$(stat -c %s "$1")"
	if [[ "$size" != "$want_size" ]]; then
		echo "install-onnxruntime: $1: size $size, want $want_size" >&2
		return 1
	fi
	sha="$(sha256sum "$1" | cut -d' ' -f1)"
	if [[ "$sha" != "$want_sha" ]]; then
		echo "install-onnxruntime: $1: sha256 $sha, want $want_sha" >&2
		return 1
	fi
}

if [[ -f "$target" ]] && verify "$target"; then
	echo "install-onnxruntime: ONNX Runtime ${ORT_VERSION} already installed: ${target}"
	exit 0
fi

command -v npm >/dev/null ||
	die "npm not found; install it first (Debian: apt-get install -y npm)"
command -v sha256sum >/dev/null || die "sha256sum not found (Debian: coreutils)"

work="$(mktemp -d "${TMPDIR:-/tmp}/ort-install.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "install-onnxruntime: fetching ${NPM_PACKAGE} (about 113 MB) with npm pack"
# npm checks the tarball against the registry's integrity digest.
(cd "$work" && npm pack --silent "$NPM_PACKAGE" >"$work/pack.out") ||
	die "npm pack ${NPM_PACKAGE} failed"
tarball="$work/$(tail -n 1 "$work/pack.out")"
[[ -f "$tarball" ]] || die "npm pack did not produce a tarball (got: $(cat "$work/pack.out"))"

tar -xzf "$tarball" -C "$work" "$member" || die "${member} not found in ${tarball##*/}"
verify "$work/$member" || die "extracted library does not match the pinned digest; not installed"

# Put the file in place atomically so that a concurrent reader never sees half of it.
install -m 0644 "$work/$member" "${target}.tmp.$$"
mv -f "${target}.tmp.$$" "$target"
echo "install-onnxruntime: installed ONNX Runtime ${ORT_VERSION} (${arch}, ${want_size} bytes," \
	"sha256 ${want_sha:0:12}...): ${target}"
echo "install-onnxruntime: the CPU backend finds it there from inside the repository;" \
	"elsewhere set MEDLSAM_ORT_LIB=${target}"
