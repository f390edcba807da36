package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/segment"
)

func TestWriteEvalSummary(t *testing.T) {
	d, h, iou := 0.8125, 3.5, 0.25
	tests := []struct {
		name string
		rep  evalReport
		want []string // lines, each with its fields separated by runs of spaces
		not  []string
	}{
		{"masks and boxes", evalReport{Prediction: "p.nii.gz", Labels: "l.nii.gz",
			Masks: []eval.SegScore{{Label: 5, Name: "liver", Dice: &d, HD95: &h,
				PredVoxels: 10, RefVoxels: 12}, {Label: 2, RefVoxels: 3}},
			Boxes:    []evalBoxScore{{Label: 5, Name: "liver", IoU: &iou}},
			MeanDice: &d, MeanHD95: &h},
			[]string{"5 liver 0.8125 3.50 10 12", "2 - - 0 3", "mean 0.8125 3.50",
				"boxes vs l.nii.gz", "5 liver 0.2500 -"}, nil},
		{"boxes only", evalReport{Labels: "l.nii.gz",
			Boxes: []evalBoxScore{{Label: 1, Name: "spleen"}}},
			[]string{"1 spleen - -"}, []string{"masks", "mean"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeEvalSummary(&b, tc.rep); err != nil {
				t.Fatal(err)
			}
			checkLines(t, b.String(), tc.want, tc.not)
		})
	}
}

func TestWriteSegmentSummary(t *testing.T) {
	org := segment.OrganReport{Organ: segment.Organ{Label: 7, Name: "pancreas",
		Box: eval.Box{Min: [3]int{1, 2, 3}, Max: [3]int{4, 5, 9}}}, FirstSlice: 3,
		LastSlice: 9, Slices: 7, Voxels: 321, MeanIoUPrediction: 0.5}
	rep := segmentReport{Queries: []segmentQuery{{Query: "/x/q.nii.gz",
		Output: []string{"/o/q_mask.nii.gz"}, Segmentation: segment.Report{
			Shape: [3]int{8, 9, 10}, Layout: segment.LayoutBoxes, Batch: 2,
			Organs: []segment.OrganReport{org}, SlicesEncoded: 7, EncoderBatches: 4,
			DecoderCalls: 7, BoxesDecoded: 11,
			Times: segment.Times{Encoder: 1234.4, Total: 2000}}}}}
	var b bytes.Buffer
	if err := writeSegmentSummary(&b, rep); err != nil {
		t.Fatal(err)
	}
	checkLines(t, b.String(), []string{
		"query q.nii.gz: shape [8 9 10],",
		"7 pancreas [1 2 3] [4 5 9] 3..9 (7) 321 0.500",
		"SAM: 11 boxes on 7 distinct slices; 7 slices encoded in 4 encoder calls (batch 2); " +
			"7 decoder calls",
		"encoder 1234,", "total 2000", "wrote /o/q_mask.nii.gz"}, nil)
}

// checkLines checks that out, with runs of spaces squeezed to one, contains every want and
// none of not.
func checkLines(t *testing.T, out string, want, not []string) {
	t.Helper()
	flat := strings.Join(strings.Fields(strings.ReplaceAll(out, "\n", " \n ")), " ")
	for _, w := range want {
		if !strings.Contains(flat, w) {
			t.Errorf("summary lacks %q:\n%s", w, out)
		}
	}
	for _, n := range not {
		if strings.Contains(flat, n) {
			t.Errorf("summary has %q:\n%s", n, out)
		}
	}
}
