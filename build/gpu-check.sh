#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and driver but no Go: runs the test
# binaries that `make cuda-test-bins` built (CUDA runtime linked statically), prints a table
# of the kernel benchmarks against the measured device-to-device copy bandwidth, and, where
# TensorRT's trtexec is found, builds engines from the tiny ONNX models and compares them
# with the golden outputs.
#
#   bash build/gpu-check.sh [--record] [benchtime]   (default 200ms)
#
# Parts, in order of importance, each with its own timeout, all under one deadline of 470 s
# (a part that would start with under 10 s left is skipped and says so), so the whole run
# stays under 8 minutes:
#   0. when the binaries are missing and Go and nvcc are here, make cuda-test-bins;
#   1. tests: kernels-gpu.test (150 s), engine-gpu.test (45 s; the scheduler on the GPU over
#      the shared abdomen CT, ../shared/data, when present);
#   2. the benchmarks of kernels-gpu.test (120 s) and the table: kernel, GB/s, % of copy
#      bandwidth (target 70 %), TFLOP/s;
#   3. TensorRT, when trtexec is found (PATH, TRTEXEC, /usr/src/tensorrt/bin): fp32 engines
#      from testdata/models (build 120 s, compare 60 s; tolerance 1e-3 abs + 1e-3 rel), the
#      GPU pipeline end to end on the shared CT with those engines when
#      bin/medlsam-fast-trt was carried (make tensorrt; 90 s: a given box, and MedLAM
#      localisation on the device compared with the CPU's; then 60 s: localize --backend gpu
#      in a localisation worker, compared too), fp16 engines (build 120 s,
#      compare 60 s; tolerance 3e-2) when python3 has onnx for build/engines/mixed_precision.py;
#      where TensorRT is missing it says so and the rest runs;
#   4. the cgocheck2 builds of the tests (whatever time is left, 120 s at most each).
# With --record, the device line, the commit, the test summary, the TensorRT comparison and
# the table are appended to docs/gpu-results.md (and copied to $OUT/gpu-results.md when $OUT
# is set, as on the project's device machines, where one call is:
#   bash build/gpu-check.sh --record    with bin/gpu-tests carried from `make cuda-test-bins`).
# Exit status: non-zero when a test, benchmark or comparison failed.
set -uo pipefail
cd "$(dirname "$0")/.."
record=0
if [ "${1:-}" = "--record" ]; then
	record=1
	shift
fi
benchtime=${1:-200ms}
PYTHON=${PYTHON:-python3}
bins=bin/gpu-tests
status=0
log=$(mktemp)
exec > >(tee "$log") 2>&1

if ! ls "$bins"/*.test >/dev/null 2>&1 && command -v go >/dev/null 2>&1 &&
	command -v nvcc >/dev/null 2>&1; then
	echo "gpu-check: building the test binaries (make cuda-test-bins)"
	make cuda-test-bins || exit 1
fi

if ! ls "$bins"/*.test >/dev/null 2>&1; then
	echo "gpu-check: SKIPPED everything: no test binaries in $bins (run make cuda-test-bins)"
	exit 1
fi
if command -v nvidia-smi >/dev/null 2>&1; then
	nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory \
		--format=csv,noheader || true
else
	echo "gpu-check: nvidia-smi not found (device details come from the tests' log)"
fi

# trt_part builds TensorRT engines from the tiny ONNX models and compares them with the
# golden outputs (build/engines/compare.py), then runs the GPU pipeline end to end.
trt_part() {
	echo "== tensorrt"
	local trtexec=${TRTEXEC:-}
	[ -n "$trtexec" ] || trtexec=$(command -v trtexec || true)
	[ -n "$trtexec" ] || [ ! -x /usr/src/tensorrt/bin/trtexec ] ||
		trtexec=/usr/src/tensorrt/bin/trtexec
	if [ -z "$trtexec" ]; then
		echo "gpu-check: SKIPPED TensorRT: trtexec not found (install TensorRT 10 or 11, or" \
			"set TRTEXEC); everything else ran"
		return
	fi
	if ! "$PYTHON" -c 'import numpy' 2>/dev/null; then
		echo "gpu-check: SKIPPED TensorRT: $PYTHON lacks numpy (compare.py needs it)"
		return
	fi
	local eng lim prec
	eng=$(mktemp -d)
	for prec in fp32 fp16; do
		if [ "$prec" = fp16 ] && ! "$PYTHON" -c 'import onnx' 2>/dev/null; then
			echo "gpu-check: SKIPPED TensorRT fp16: $PYTHON lacks onnx (mixed_precision.py)"
			continue
		fi
		lim=$(budget 120)
		if [ "$lim" -eq 0 ]; then
			echo "gpu-check: SKIPPED TensorRT $prec: the 470 s deadline is reached"
			continue
		fi
		echo "-- $prec engines from testdata/models ($lim s at most)"
		if ! TRTEXEC=$trtexec PYTHON=$PYTHON timeout "$lim" bash build/engines/build.sh \
			--models testdata/models --out "$eng/$prec" --precision "$prec"; then
			echo "gpu-check: FAILED: TensorRT $prec engine build (logs: $eng/$prec/*.log)"
			tail -20 "$eng/$prec"/*.log 2>/dev/null
			status=1
			continue
		fi
		lim=$(budget 60)
		if [ "$lim" -eq 0 ]; then
			echo "gpu-check: SKIPPED TensorRT $prec comparison: the 470 s deadline is reached"
			continue
		fi
		if ! timeout "$lim" "$PYTHON" build/engines/compare.py --engines "$eng/$prec" \
			--work "$eng/$prec-work" --precision "$prec" --trtexec "$trtexec"; then
			echo "gpu-check: FAILED: TensorRT $prec engines differ from the golden outputs"
			status=1
		fi
		[ "$prec" = fp32 ] && trt_pipeline "$eng/fp32"
	done
}

# trt_pipeline ENGINES runs the device pipeline (gpu-worker of a cuda,tensorrt binary) on the
# shared abdomen CT as two jobs of one batch: one with a box given, one localised on the
# device with a template set (the CT and its labels, built here on the CPU), and checks that
# both label maps came back; the device boxes are printed beside the CPU localisation's.
trt_pipeline() {
	local ct=../shared/data/ct/abdomen_ct.nii.gz bin=bin/medlsam-fast-trt lim
	local labels=../shared/data/ct/abdomen_ct_labels.nii.gz
	if [ ! -x "$bin" ]; then
		echo "gpu-check: SKIPPED GPU pipeline with TensorRT: $bin absent (build it with" \
			"make tensorrt TENSORRT_ROOT=... where Go, nvcc and TensorRT are, and carry it);" \
			"the scheduler ran on the GPU in engine-gpu.test without the networks"
		return
	fi
	if [ ! -f "$ct" ] || [ ! -f "$labels" ]; then
		echo "gpu-check: SKIPPED GPU pipeline: $ct or its labels absent"
		return
	fi
	lim=$(budget 90)
	if [ "$lim" -eq 0 ]; then
		echo "gpu-check: SKIPPED GPU pipeline: the 470 s deadline is reached"
		return
	fi
	local work
	work=$(mktemp -d)
	echo '[{"label": 1, "name": "box", "box": {"min": [30, 30, 40], "max": [80, 70, 60]}}]' \
		>"$work/organs.json"
	echo "-- GPU pipeline on $ct ($lim s at most)"
	# The template set and the CPU localisation to compare with (tiny MedLAM, native).
	if ! timeout "$lim" "$bin" localize --backend cpu --kernels cpu --models testdata/models \
		--template "$ct:$labels" --organs 1,5 --seed 0 --save-templates "$work/set.mlts" \
		-o "$work/cpu.json" "$ct" >/dev/null; then
		echo "gpu-check: FAILED: GPU pipeline: the template set could not be built on the CPU"
		status=1
		return
	fi
	"$PYTHON" - "$ct" "$work" <<'PY' | timeout "$lim" "$bin" gpu-worker --engines "$1" \
		>"$work/resp.bin" || true
import json, os, struct, sys
ct, work = sys.argv[1], sys.argv[2]
job = {"jobs": [{"query": ct, "mask": os.path.join(work, "mask.nii.gz"),
                 "organs": os.path.join(work, "organs.json")},
                {"query": ct, "mask": os.path.join(work, "mask-localised.nii.gz"),
                 "templates": os.path.join(work, "set.mlts"), "localize": {"seed": 0}}]}
b = json.dumps({"id": 1, "batch": 4, "job": job}).encode()
sys.stdout.buffer.write(struct.pack(">I", len(b)) + b)
PY
	if "$PYTHON" - "$work" <<'PY'; then
import json, os, struct, sys
work = sys.argv[1]
raw = open(os.path.join(work, "resp.bin"), "rb").read()
if len(raw) < 4:
    sys.exit("gpu-check: FAILED: GPU pipeline: the worker gave no answer")
resp = json.loads(raw[4:4 + struct.unpack(">I", raw[:4])[0]])
res = resp.get("result") or []
errs = [resp.get("err")] + [r.get("err") for r in res]
errs = [e for e in errs if e]
masks = [os.path.join(work, m) for m in ("mask.nii.gz", "mask-localised.nii.gz")]
if errs or not all(os.path.exists(m) for m in masks):
    sys.exit("gpu-check: FAILED: GPU pipeline: " + "; ".join(errs or ["a mask is missing"]))
print("gpu-check: GPU pipeline wrote", ", ".join(masks))
dev = {o["label"]: o["box"] for o in res[1]["localization"]["organs"]}
cpu = {o["label"]: o["box"] for o in json.load(open(os.path.join(work, "cpu.json")))["organs"]}
worst = 0
for label, b in sorted(cpu.items()):
    d = dev.get(label)
    if d is None:
        sys.exit("gpu-check: FAILED: device localisation lacks label %d" % label)
    diff = max(abs(d[k][a] - b[k][a]) for k in ("min", "max") for a in range(3))
    worst = max(worst, diff)
    print("gpu-check: label %d box device %s..%s, cpu %s..%s" % (label, d["min"], d["max"],
          b["min"], b["max"]))
print("gpu-check: device vs CPU localisation (fp32 engines vs the native network): "
      "largest face difference %d voxels" % worst)
PY
		:
	else
		status=1
	fi
	# The same localisation through the command line: localize hands the query to a
	# localisation-only worker (gpu-worker --work localise, no SAM engines opened).
	lim=$(budget 60)
	if [ "$lim" -eq 0 ]; then
		echo "gpu-check: SKIPPED localize --backend gpu: the 470 s deadline is reached"
		return
	fi
	if ! timeout "$lim" "$bin" localize --backend gpu --engines "$1" --models testdata/models \
		--templates-file "$work/set.mlts" --seed 0 -o "$work/gpu.json" "$ct" >/dev/null; then
		echo "gpu-check: FAILED: localize --backend gpu on $ct"
		status=1
		return
	fi
	"$PYTHON" - "$work" <<'PY' || status=1
import json, os, sys
work = sys.argv[1]
load = lambda f: {o["label"]: o["box"] for o in json.load(open(os.path.join(work, f)))["organs"]}
gpu, cpu = load("gpu.json"), load("cpu.json")
if sorted(gpu) != sorted(cpu):
    sys.exit("gpu-check: FAILED: localize --backend gpu gave labels %s, the CPU %s" %
             (sorted(gpu), sorted(cpu)))
worst = max(abs(gpu[l][k][a] - cpu[l][k][a]) for l in cpu for k in ("min", "max")
            for a in range(3))
print("gpu-check: localize --backend gpu vs the CPU: largest face difference %d voxels" % worst)
PY
}

# budget LIMIT prints the seconds a part may take: LIMIT, or what is left before the
# deadline; 0 when under 10 s are left.
deadline=470
budget() {
	local left=$((deadline - SECONDS))
	if [ "$left" -lt 10 ]; then echo 0; else echo $((left < $1 ? left : $1)); fi
}

# run_tests BINARY LIMIT runs one test binary from its package directory (so that the tests'
# relative paths to testdata and ../shared/data hold), under a timeout.
run_tests() {
	local t=$1 lim
	lim=$(budget "$2")
	if [ "$lim" -eq 0 ]; then
		echo "gpu-check: SKIPPED $t: the 470 s deadline is reached"
		return
	fi
	local name dir
	name=$(basename "$t" .test)
	dir=$(sed 's/-cgocheck2$//; s|-|/|g' <<<"$name")
	[ -d "$dir" ] || dir=.
	echo "-- $t (in $dir, $lim s at most)"
	if ! (cd "$dir" && timeout "$lim" "$OLDPWD/$t" -test.v -test.count=1 \
		-test.timeout "$((lim - 5))s") 2>&1 | tee /tmp/gpu-check-test.log; then
		echo "gpu-check: FAILED: $t"
		status=1
	fi
	if grep -q -- '--- SKIP' /tmp/gpu-check-test.log; then
		echo "gpu-check: NOTE: $t skipped tests (reasons above)"
	fi
}

echo "== tests"
for t in "$bins"/*.test; do
	case "$t" in
	*-cgocheck2.test) ;;
	*kernels-gpu.test | */gpu.test) run_tests "$t" 150 ;;
	*) run_tests "$t" 45 ;;
	esac
done

echo "== benchmarks (benchtime $benchtime)"
bench=$bins/kernels-gpu.test
[ -x "$bench" ] || bench=$bins/gpu.test
out=
lim=$(budget 120)
if [ ! -x "$bench" ]; then
	echo "gpu-check: SKIPPED benchmarks: $bins/kernels-gpu.test is missing"
	status=1
elif [ "$lim" -eq 0 ]; then
	echo "gpu-check: SKIPPED benchmarks: the 470 s deadline is reached"
	status=1
else
	out=$(timeout "$lim" "$bench" -test.run '^$' -test.bench . -test.benchtime "$benchtime" \
		-test.timeout "$((lim - 5))s" 2>&1)
	rc=$?
	echo "$out"
	if [ $rc -ne 0 ]; then
		echo "gpu-check: FAILED: benchmarks exited with $rc"
		status=1
	fi
fi
table=
if ! grep -q '^BenchmarkCopy' <<<"$out"; then
	echo "gpu-check: SKIPPED table: no BenchmarkCopy result (no GPU, or it failed)"
	status=1
else
echo "== table"
table=$(awk '
/^Benchmark/ {
	name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
	mbs = ""; tf = ""
	for (i = 2; i <= NF; i++) {
		if ($i == "MB/s") mbs = $(i-1)
		if ($i == "TFLOP/s") tf = $(i-1)
	}
	names[++n] = name; gbs[n] = mbs; tfl[n] = tf
	if (name == "Copy") copy = mbs
}
END {
	printf "%-20s %10s %12s %9s\n", "kernel", "GB/s", "% of copy", "TFLOP/s"
	for (i = 1; i <= n; i++) {
		g = gbs[i] == "" ? "-" : sprintf("%.1f", gbs[i] / 1000)
		p = (gbs[i] == "" || copy == "") ? "-" : sprintf("%.0f %%", 100 * gbs[i] / copy)
		if (names[i] ~ /^Staged/) p = "(host, PCIe)"
		else if (names[i] != "Copy" && gbs[i] != "" && copy != "" && gbs[i] / copy < 0.7)
			p = p " <70"
		t = tfl[i] == "" ? "-" : tfl[i]
		printf "%-20s %10s %12s %9s\n", names[i], g, p, t
	}
	print "GB/s: bytes each launch must read and write once; copy = device-to-device memcpy."
}' <<<"$out")
echo "$table"
fi

trt_part
for t in "$bins"/*-cgocheck2.test; do
	[ -e "$t" ] && run_tests "$t" 120
done

if [ $record -eq 1 ]; then
	results=docs/gpu-results.md
	device=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null |
		head -1)
	{
		echo
		echo "## $(date -u +%Y-%m-%dT%H:%MZ), ${device:-unknown device}"
		echo
		echo "Commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
			"(working tree $(git status --porcelain 2>/dev/null | wc -l) files changed)," \
			"benchtime $benchtime, exit status $status."
		echo
		echo '```'
		grep -E '^(--- (FAIL|SKIP)|ok |FAIL|PASS$|gpu-check:|compare.py:|  [^ ]+[.]plan )' \
			"$log" | head -60
		echo
		echo "$table"
		echo '```'
	} >>"$results"
	echo "gpu-check: recorded in $results"
	if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
		cp "$results" "$OUT/gpu-results.md"
		cp "$log" "$OUT/gpu-check.log"
	fi
fi
exit $status
