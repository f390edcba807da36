#!/usr/bin/env bash
# The main job on the bundled data: MedLSAM end to end with the bundled tiny random models.
#
#   templates  testdata/phantom (phantom seed 1: CT and label map) -> MedLAM template set
#   localise   the query testdata/phantom/query (phantom seed 2) -> one 3D box per organ
#   segment    SAM on every slice the boxes touch (each slice encoded once) -> label map
#   write      the mask on the query's exact grid (.nii.gz)
#   eval       Dice / HD95 of the mask and IoU / wall distance of the boxes against the
#              query's own label map, which no earlier stage reads
#
# The tiny models have random weights: every stage, call count and geometry is exercised,
# but the boxes and masks are not anatomy and their scores mean nothing (see README.md,
# "Main job"). Run through `make demo`; ORGANS, THREADS, OUT and BIN override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin/medlsam-fast}
models=testdata/models
tpl=testdata/phantom
query=testdata/phantom/query
out=${OUT:-build/out/demo}
organs=${ORGANS:-spleen,liver,kidney_right}
threads=${THREADS:-0}
mkdir -p "$out"

if [ ! -x "$bin" ]; then
	echo "demo: $bin missing; run make demo (it builds it first)" >&2
	exit 1
fi
if [ ! -f "$query/phantom_ct.nii.gz" ]; then
	# The committed query; regenerated only when absent (same seed, same volume).
	$bin phantom --seed 2 "$query"
fi

# stage NAME CMD... runs one stage, logs to $out/NAME.log, and records its wall time.
times=()
stage() {
	local name=$1
	shift
	echo "== $name: $*"
	local t0=$SECONDS
	if ! "$@" 2>"$out/$name.log"; then
		echo "demo: stage $name failed; its log:" >&2
		cat "$out/$name.log" >&2
		exit 1
	fi
	times+=("$name $((SECONDS - t0)) s")
}

start=$SECONDS
stage templates $bin localize --models "$models" --threads "$threads" \
	--template "$tpl/phantom_ct.nii.gz:$tpl/phantom_labels.nii.gz" \
	--label-names "$tpl/phantom_labels.json" --organs "$organs" \
	--save-templates "$out/templates.json"
echo "   template set: $out/templates.json"

stage localise $bin localize --models "$models" --threads "$threads" \
	--templates-file "$out/templates.json" -o "$out/boxes.json" "$query/phantom_ct.nii.gz"
echo "   boxes: $out/boxes.json (shown with the segmentation below)"

stage segment $bin segment --summary --models "$models" --sam-name sam_tiny \
	--threads "$threads" --boxes "$out/boxes.json" -d "$out" -o "$out/segment.json" \
	"$query/phantom_ct.nii.gz"

labels=$(grep -o '"label": [0-9]*' "$out/boxes.json" | grep -o '[0-9]*' | paste -sd, -)
stage eval $bin eval --summary --mask "$out/phantom_ct_mask.nii.gz" \
	--boxes "$out/boxes.json" --organs "$labels" -o "$out/eval.json" \
	"$query/phantom_labels.nii.gz"

echo "== time per stage (wall clock):"
for t in "${times[@]}"; do
	echo "   $t"
done
echo "   total $((SECONDS - start)) s"
echo "demo: outputs and logs in $out (random tiny models: the scores mean nothing)"
