#!/usr/bin/env bash
# Installs what medlsam-fast needs on a Debian 12 machine, idempotently.
#
#   bash build/setup.sh           runtime: npm (to fetch ONNX Runtime), ONNX Runtime 1.30.0
#   bash build/setup.sh --test    + what the test suite uses: Python 3 with nibabel, numpy,
#                                 scipy, torch and onnx (Debian packages, for parity tests
#                                 and the model exporters)
#   bash build/setup.sh --cuda    + nvcc 11.8 and cmake, to build the CUDA kernels
#   bash build/setup.sh --arm64   + an arm64 cross compiler, arm64 zlib and qemu, for
#                                 make arm64-check (the CPU path built and tested for arm64)
#
# Go 1.26 or newer must already be installed (Debian 12's golang package is too old):
# https://go.dev/doc/install. Run as root or with sudo available.
set -euo pipefail

want_test=0
want_cuda=0
want_arm64=0
for arg in "$@"; do
	case "$arg" in
	--test) want_test=1 ;;
	--cuda) want_cuda=1 ;;
	--arm64) want_arm64=1 ;;
	-h | --help)
		sed -n '2,13p' "$0"
		exit 0
		;;
	*)
		echo "setup: unknown option $arg" >&2
		exit 2
		;;
	esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	sudo="sudo"
fi

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
	echo "setup: Go is not installed; install Go 1.26 or newer (https://go.dev/doc/install)" >&2
	exit 1
fi

# gcc for cgo; zlib1g-dev because .nii.gz files inflate through the system zlib.
pkgs=(ca-certificates make gcc zlib1g-dev)
# npm fetches the ONNX Runtime package; a machine with Node.js from elsewhere already has it.
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
if [ "$want_test" = 1 ]; then
	pkgs+=(python3 python3-numpy python3-nibabel python3-scipy python3-torch python3-onnx
		python3-pytest)
fi
if [ "$want_cuda" = 1 ]; then
	# nvcc comes from Debian's non-free component.
	src=/etc/apt/sources.list.d/debian-nonfree.sources
	if [ ! -f "$src" ]; then
		$sudo tee "$src" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	fi
	pkgs+=(nvidia-cuda-toolkit cmake)
fi
if [ "$want_arm64" = 1 ]; then
	# zlib for arm64 comes from Debian's multiarch archive.
	dpkg --print-foreign-architectures | grep -qx arm64 || $sudo dpkg --add-architecture arm64
	pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static zlib1g-dev:arm64)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "setup: installing Debian packages: ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
		"${missing[@]}"
fi

bash "$root/build/install-onnxruntime.sh"
echo "setup: done"
