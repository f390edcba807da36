#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and driver but no Go: runs the test
# binaries that `make cuda-test-bins` built (CUDA runtime linked statically) and prints a
# table of the kernel benchmarks against the measured device-to-device copy bandwidth.
#
#   bash build/gpu-check.sh [--record] [benchtime]   (default 200ms; whole run < 8 minutes)
#
# Steps: 0. when the binaries are missing and Go and nvcc are here, make cuda-test-bins;
# 1. every bin/gpu-tests/*.test with -test.v (the cgocheck2 build too); 2. the benchmarks of
# gpu.test; 3. the table: kernel, GB/s, % of copy bandwidth (target 70 %), TFLOP/s.
# With --record, the device line, the commit, the test summary and the table are appended
# to docs/gpu-results.md (and copied to $OUT/gpu-results.md when $OUT is set, as on the
# project's device machines, where one call is:
#   bash build/gpu-check.sh --record    with bin/gpu-tests carried from `make cuda-test-bins`).
# Exit status: non-zero when a test or benchmark run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
record=0
if [ "${1:-}" = "--record" ]; then
	record=1
	shift
fi
benchtime=${1:-200ms}
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

echo "== tests"
for t in "$bins"/*.test; do
	echo "-- $t"
	# Each binary gets 4 minutes at most; the similarity test at the MedLAM scales runs the
	# CPU reference too.
	if ! timeout 240 "$t" -test.v -test.count=1 -test.timeout 230s 2>&1 | tee /tmp/gpu-check-test.log; then
		echo "gpu-check: FAILED: $t"
		status=1
	fi
	if grep -q -- '--- SKIP' /tmp/gpu-check-test.log; then
		echo "gpu-check: NOTE: $t skipped tests (reasons above)"
	fi
done

echo "== benchmarks (benchtime $benchtime)"
bench=$bins/gpu.test
if [ ! -x "$bench" ]; then
	echo "gpu-check: SKIPPED benchmarks: $bench is missing"
	exit 1
fi
out=$(timeout 180 "$bench" -test.run '^$' -test.bench . -test.benchtime "$benchtime" \
	-test.timeout 170s 2>&1)
rc=$?
echo "$out"
if [ $rc -ne 0 ]; then
	echo "gpu-check: FAILED: benchmarks exited with $rc"
	status=1
fi
if ! grep -q '^BenchmarkCopy' <<<"$out"; then
	echo "gpu-check: SKIPPED table: no BenchmarkCopy result (no GPU, or it failed)"
	exit 1
fi

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
		grep -E '^(--- (FAIL|SKIP)|ok |FAIL|PASS$|gpu-check:)' "$log" | head -40
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
