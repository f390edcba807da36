package gpu

import (
	"slices"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/segment"
)

func box(i0, j0, k0, i1, j1, k1 int) eval.Box {
	return eval.Box{Min: [3]int{i0, j0, k0}, Max: [3]int{i1, j1, k1}}
}

func TestSegPlan(t *testing.T) {
	shape := [3]int{40, 30, 10}
	a := Organ{Label: 3, Name: "liver", Box: box(1, 2, 2, 20, 25, 4)}
	b := Organ{Label: 7, Name: "spleen", Box: box(5, 5, 4, 9, 9, 5)}
	split := Organ{Label: 9, Chunks: []eval.Box{box(0, 0, 7, 3, 3, 7), box(4, 4, 8, 9, 9, 9)}}
	tests := []struct {
		name       string
		organs     []Organ
		batch      int
		wantSlices [][]int
		wantLabels [][]int16
		wantStarts [][]int32
	}{
		{"one organ", []Organ{a}, 8, [][]int{{2, 3, 4}}, [][]int16{{3, 3, 3}},
			[][]int32{{0, 1, 2, 3}}},
		{"batches of two", []Organ{a}, 2, [][]int{{2, 3}, {4}}, [][]int16{{3, 3}, {3}},
			[][]int32{{0, 1, 2}, {0, 1}}},
		{"shared slice, organ order", []Organ{b, a}, 8, [][]int{{2, 3, 4, 5}},
			[][]int16{{3, 3, 7, 3, 7}}, [][]int32{{0, 1, 2, 4, 5}}},
		{"chunks on their slices", []Organ{split}, 2, [][]int{{7, 8}, {9}},
			[][]int16{{9, 9}, {9}}, [][]int32{{0, 1, 2}, {0, 1}}},
		{"overlapping chunks, one mask per slice", []Organ{{Label: 9, Chunks: []eval.Box{
			box(0, 0, 6, 3, 3, 8), box(4, 4, 8, 9, 9, 9)}}}, 8, [][]int{{6, 7, 8, 9}},
			[][]int16{{9, 9, 9, 9}}, [][]int32{{0, 1, 2, 3, 4}}},
		{"nothing", nil, 4, nil, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := segPlan(tc.organs, shape, tc.batch)
			if err != nil {
				t.Fatal(err)
			}
			if len(plan) != len(tc.wantSlices) {
				t.Fatalf("%d batches, want %d: %+v", len(plan), len(tc.wantSlices), plan)
			}
			for i, p := range plan {
				if !slices.Equal(p.Slices, tc.wantSlices[i]) ||
					!slices.Equal(p.Labels, tc.wantLabels[i]) ||
					!slices.Equal(p.Starts, tc.wantStarts[i]) {
					t.Errorf("batch %d: slices %v labels %v starts %v; want %v %v %v", i,
						p.Slices, p.Labels, p.Starts, tc.wantSlices[i], tc.wantLabels[i],
						tc.wantStarts[i])
				}
				if len(p.Boxes) != len(p.Labels) || len(p.Of) != len(p.Labels) {
					t.Errorf("batch %d: %d boxes, %d slice indices for %d labels", i,
						len(p.Boxes), len(p.Of), len(p.Labels))
				}
				for m, s := range p.Of {
					if int32(m) < p.Starts[s] || int32(m) >= p.Starts[s+1] {
						t.Errorf("batch %d: mask %d says slice %d, starts say otherwise", i, m, s)
					}
				}
			}
		})
	}
	// The prompt boxes are the CPU path's.
	plan, err := segPlan([]Organ{b, a}, shape, 8)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := plan[0].Boxes[2], segment.Box1024(b.Box, 40, 30); got != want {
		t.Errorf("box of spleen on slice 4 = %v, want %v", got, want)
	}
	if got, want := plan[0].Boxes[3], segment.Box1024(a.Box, 40, 30); got != want {
		t.Errorf("box of liver on slice 4 = %v, want %v", got, want)
	}
	// Where chunks overlap, the later chunk's box, as segment.Segment does.
	late := box(4, 4, 8, 9, 9, 9)
	plan, err = segPlan([]Organ{{Label: 9, Chunks: []eval.Box{box(0, 0, 6, 3, 3, 8), late}}},
		shape, 8)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := plan[0].Boxes[2], segment.Box1024(late, 40, 30); got != want {
		t.Errorf("box on the shared slice 8 = %v, want the later chunk's %v", got, want)
	}
}

func TestSegPlanRefuses(t *testing.T) {
	shape := [3]int{40, 30, 10}
	tests := []struct {
		name  string
		o     Organ
		batch int
		want  string
	}{
		{"inverted", Organ{Label: 1, Name: "x", Box: box(5, 5, 5, 4, 9, 9)}, 2, "inverted"},
		{"outside", Organ{Label: 1, Name: "x", Box: box(0, 0, 0, 40, 9, 9)}, 2,
			"outside the volume"},
		{"negative", Organ{Label: 1, Box: box(0, -1, 0, 4, 9, 9)}, 2, "outside the volume"},
		{"label zero", Organ{Label: 0, Box: box(0, 0, 0, 4, 4, 4)}, 2, "label 0 outside"},
		{"label too big", Organ{Label: 40000, Box: box(0, 0, 0, 4, 4, 4)}, 2, "outside"},
		{"bad chunk", Organ{Label: 2, Name: "y", Chunks: []eval.Box{box(0, 0, 0, 4, 4, 12)}},
			2, "organ 0 (y, label 2)"},
		{"batch", Organ{Label: 1, Box: box(0, 0, 0, 4, 4, 4)}, 0, "batch 0"},
	}
	for _, tc := range tests {
		_, err := segPlan([]Organ{tc.o}, shape, tc.batch)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestSegPlanRefusesRepeatedLabel(t *testing.T) {
	o := Organ{Label: 4, Name: "x", Box: box(0, 0, 0, 4, 4, 4)}
	_, err := segPlan([]Organ{o, o}, [3]int{40, 30, 10}, 2)
	if err == nil || !strings.Contains(err.Error(), "label 4 given twice") {
		t.Errorf("err %v, want one about label 4 given twice", err)
	}
}
