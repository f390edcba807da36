#!/usr/bin/env bash
# The main job on the bundled default: read the bundled phantom, resample it to MedLAM's 3 mm
# grid, write it back, and describe input and output. Run through `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=bin/medlsam-fast
out=${OUT:-build/out/demo}
mkdir -p "$out"

$bin info testdata/phantom/phantom_ct.nii.gz
$bin resample --spacing 3,3,3 testdata/phantom/phantom_ct.nii.gz "$out/phantom_ct_3mm.nii.gz"
$bin resample --labels --spacing 3,3,3 testdata/phantom/phantom_labels.nii.gz \
	"$out/phantom_labels_3mm.nii.gz"
$bin info "$out/phantom_ct_3mm.nii.gz"
echo "demo: outputs in $out"
