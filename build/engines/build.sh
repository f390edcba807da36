#!/usr/bin/env bash
# build/engines/build.sh: build TensorRT engines from the ONNX exports, with their manifests.
#
#   bash build/engines/build.sh [--models DIR] [--out DIR] [--only MODEL] [--precision P]
#
# --models  directory of ONNX exports with manifests (default <repo>/models/full; testdata/models
#           holds the tiny ones). Each *.onnx is built if its manifest's "model" field has a
#           recipe below.
# --out     where plans and manifests go (default ./engines)
# --only    build one model (medlam, medlam-encoder, sam-encoder, sam-decoder)
# --precision fp16 (default) or fp32
#
# Precision: fp16 engines are built strongly typed (--stronglyTyped, TensorRT 10.x; always on
# in 11.x, which removed --fp16, --precisionConstraints and --layerPrecisions). The types come
# from the graph: mixed_precision.py first rewrites the export so that Conv, ConvTranspose,
# MatMul and Gemm run in fp16 while LayerNormalization (which overflows fp16 in the SAM
# encoder), Softmax, InstanceNormalization and the rest stay fp32. One recipe thus builds the
# same network on both release lines, instead of precision hints that 11.x would refuse.
#
# Profiles (one per engine; the batch is dimension 0):
#   sam-encoder     images            1 .. 32 images, optimum 8
#   sam-decoder     image_embeddings, boxes   1 .. 64 boxes, optimum 16
#   medlam          patch             1 .. 96 patches, optimum 32
#   medlam-encoder  patch             1 .. 96 patches, optimum 32
#
# Needs trtexec (TensorRT's bin/, or TRTEXEC=path), nvidia-smi and /usr/bin/python3 with onnx.
# GPU=N picks the device (default 0); engines are specific to that GPU and TensorRT version,
# which the manifest records and the runtime checks.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

MODELS=$ROOT/models/full
OUT=engines
ONLY=
PRECISION=fp16
PYTHON=${PYTHON:-/usr/bin/python3}
TRTEXEC=${TRTEXEC:-trtexec}
GPU=${GPU:-0}
while [ $# -gt 0 ]; do
  case "$1" in
    --models) MODELS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --precision) PRECISION=$2; shift 2 ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
# Paths given relative to the caller's directory stay so; the scripts are found from ROOT.
MODELS=$(realpath -m "$MODELS")
OUT=$(realpath -m "$OUT")
case "$PRECISION" in fp16|fp32) ;; *) echo "build.sh: --precision fp16 or fp32" >&2; exit 2 ;; esac
command -v "$TRTEXEC" >/dev/null || { echo "build.sh: trtexec not found (install TensorRT, or set TRTEXEC)" >&2; exit 1; }
command -v nvidia-smi >/dev/null || { echo "build.sh: nvidia-smi not found: no NVIDIA driver" >&2; exit 1; }

IFS=, read -r GPU_NAME GPU_CC < <(nvidia-smi -i "$GPU" --query-gpu=name,compute_cap --format=csv,noheader | sed 's/, /,/')
# trtexec prints "[TensorRT v101300]" (major*10000 + minor*100 + patch).
TRT_NUM=$("$TRTEXEC" --help 2>&1 | grep -o 'TensorRT v[0-9]*' | head -1 | tr -dc 0-9)
[ -n "$TRT_NUM" ] || { echo "build.sh: cannot read the TensorRT version from trtexec" >&2; exit 1; }
TRT_VERSION="$((TRT_NUM / 10000)).$((TRT_NUM / 100 % 100)).$((TRT_NUM % 100))"
echo "build.sh: $GPU_NAME (compute $GPU_CC), TensorRT $TRT_VERSION, $PRECISION -> $OUT"

# profile MODEL prints "input=min/opt/max ..." for the model's dynamic inputs (C, H, W filled
# from the ONNX manifest's static dimensions).
profile() {
  "$PYTHON" - "$1" "$2" <<'PY'
import json, sys
ranges = {"sam-encoder": (1, 8, 32), "sam-decoder": (1, 16, 64),
          "medlam": (1, 32, 96), "medlam-encoder": (1, 32, 96)}
m = json.load(open(sys.argv[2] + ".json"))
lo, opt, hi = ranges[sys.argv[1]]
out = []
for t in m["inputs"]:
    if t["shape"] and t["shape"][0] == -1:
        rest = t["shape"][1:]
        dims = lambda b: "x".join(str(d) for d in [b] + rest)
        out.append(f'{t["name"]}={dims(lo)}/{dims(opt)}/{dims(hi)}')
print(" ".join(out))
PY
}

mkdir -p "$OUT"
built=0
for onnx in "$MODELS"/*.onnx; do
  [ -f "$onnx.json" ] || continue
  model=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"])' "$onnx.json")
  case "$model" in sam-encoder|sam-decoder|medlam|medlam-encoder) ;; *) continue ;; esac
  [ -z "$ONLY" ] || [ "$ONLY" = "$model" ] || continue
  base=$(basename "$onnx" .onnx)
  plan="$OUT/$base.plan"
  src="$onnx"
  if [ "$PRECISION" = fp16 ]; then
    src="$OUT/$base.fp16.onnx"
    "$PYTHON" "$ROOT/build/engines/mixed_precision.py" "$onnx" "$src"
  fi
  specs=$(profile "$model" "$onnx")
  mins=
  opts=
  maxs=
  profs=()
  for s in $specs; do
    name=${s%%=*}; r=${s#*=}
    IFS=/ read -r lo opt hi <<<"$r"
    mins+="${mins:+,}$name:$lo"; opts+="${opts:+,}$name:$opt"; maxs+="${maxs:+,}$name:$hi"
    profs+=(--profile "$s")
  done
  echo "build.sh: $model: $onnx -> $plan"
  # fp32 engines are the accuracy reference (build/engines/compare.py): no TF32 either.
  exact=()
  [ "$PRECISION" = fp32 ] && exact=(--noTF32)
  "$TRTEXEC" --onnx="$src" --saveEngine="$plan" --stronglyTyped "${exact[@]}" \
    --minShapes="$mins" --optShapes="$opts" --maxShapes="$maxs" \
    --memPoolSize=workspace:4096 --skipInference >"$plan.log" 2>&1 ||
    { echo "build.sh: trtexec failed for $model; see $plan.log" >&2; exit 1; }
  "$PYTHON" "$ROOT/build/engines/write_manifest.py" --onnx "$onnx" --plan "$plan" --gpu "$GPU_NAME" \
    --cc "$GPU_CC" --trt "$TRT_VERSION" --precision "$PRECISION" "${profs[@]}" \
    --rebuild "bash build/engines/build.sh --models $MODELS --out $OUT --only $model --precision $PRECISION"
  built=$((built + 1))
done
[ "$built" -gt 0 ] || { echo "build.sh: no ONNX export with a recipe in $MODELS" >&2; exit 1; }
echo "build.sh: $built engine(s) in $OUT"
