package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
)

func init() {
	register(command{
		name:    "eval",
		summary: "score masks (Dice, HD95) and boxes (IoU, wall distance) against a label map",
		run:     runEval,
	})
}

// evalReport is the JSON the eval subcommand writes.
type evalReport struct {
	Prediction string          `json:"prediction,omitempty"`
	Labels     string          `json:"labels"`
	Masks      []eval.SegScore `json:"masks,omitempty"`
	Boxes      []evalBoxScore  `json:"boxes,omitempty"`
	MeanDice   *float64        `json:"mean_dice,omitempty"`
	MeanHD95   *float64        `json:"mean_hd95_mm,omitempty"`
}

// evalBoxScore is one organ's localisation score; null when the label map lacks the organ.
type evalBoxScore struct {
	Label int       `json:"label"`
	Name  string    `json:"name,omitempty"`
	Box   eval.Box  `json:"box"`
	Ref   *eval.Box `json:"reference,omitempty"`
	IoU   *float64  `json:"iou"`
	WD    *float64  `json:"wall_distance_mm"`
}

func runEval(args []string, stdout io.Writer) error {
	fs := newFlags("eval", "LABELS.nii[.gz]", stdout)
	pred := fs.String("mask", "", "predicted label map (the segment command's output)")
	boxes := fs.String("boxes", "", "a localize JSON result to score its boxes")
	organs := fs.String("organs", "", "comma-separated labels to score (default: the "+
		"prediction's labels, or the boxes' organs)")
	out := fs.StringP("out", "o", "", "write the JSON here (default: stdout)")
	summary := fs.Bool("summary", false, "print a summary table on stdout instead of the "+
		"JSON (which --out still writes)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want exactly one reference label map", errUsage)
	}
	if *pred == "" && *boxes == "" {
		return fmt.Errorf("%w: give --mask, --boxes or both", errUsage)
	}
	refPath := fs.Arg(0)
	ref, err := nifti.Read(refPath, nifti.ReadOptions{})
	if err != nil {
		return err
	}
	var labels []int
	if *organs != "" {
		for _, s := range strings.Split(*organs, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n <= 0 {
				return fmt.Errorf("%w: --organs: %q is not a positive label", errUsage, s)
			}
			labels = append(labels, n)
		}
	}
	rep := evalReport{Prediction: *pred, Labels: refPath}
	if *pred != "" {
		p, err := nifti.Read(*pred, nifti.ReadOptions{})
		if err != nil {
			return err
		}
		if p.Volume.Shape != ref.Volume.Shape {
			return fmt.Errorf("eval: mask %s has shape %v, labels %s %v", *pred,
				p.Volume.Shape, refPath, ref.Volume.Shape)
		}
		if !p.Volume.Affine.Near(ref.Volume.Affine, 1e-3) {
			return fmt.Errorf("eval: mask %s and labels %s have different affines", *pred,
				refPath)
		}
		ls := labels
		if ls == nil {
			ls = presentLabels(p.Volume.Data)
		}
		rep.Masks, err = eval.ScoreSegmentation(p.Volume, ref.Volume, ls)
		if err != nil {
			return err
		}
		var sd, sh float64
		var nd, nh int
		for _, s := range rep.Masks {
			if s.Dice != nil {
				sd += *s.Dice
				nd++
			}
			if s.HD95 != nil {
				sh += *s.HD95
				nh++
			}
		}
		if nd > 0 {
			m := sd / float64(nd)
			rep.MeanDice = &m
		}
		if nh > 0 {
			m := sh / float64(nh)
			rep.MeanHD95 = &m
		}
	}
	if *boxes != "" {
		b, err := os.ReadFile(*boxes)
		if err != nil {
			return fmt.Errorf("eval: %w", err)
		}
		var loc localize.Result
		if err := json.Unmarshal(b, &loc); err != nil {
			return fmt.Errorf("eval: boxes file %s: %w", *boxes, err)
		}
		if loc.Shape != ref.Volume.Shape {
			return fmt.Errorf("eval: boxes file %s is for shape %v, labels %s are %v", *boxes,
				loc.Shape, refPath, ref.Volume.Shape)
		}
		for _, o := range loc.Organs {
			if labels != nil && !slices.Contains(labels, o.Label) {
				continue
			}
			s := evalBoxScore{Label: o.Label, Name: o.Name, Box: o.Box}
			rb, ok, err := eval.LabelBox(ref.Volume, o.Label)
			if err != nil {
				return err
			}
			if ok {
				iou := eval.IoU(o.Box, rb)
				wd := eval.WallDistance(o.Box, rb, ref.Volume.Spacing)
				s.Ref, s.IoU, s.WD = &rb, &iou, &wd
			}
			rep.Boxes = append(rep.Boxes, s)
		}
	}
	// The masks carry no organ names; the boxes file, when given, does.
	for i := range rep.Masks {
		for _, b := range rep.Boxes {
			if b.Label == rep.Masks[i].Label && rep.Masks[i].Name == "" {
				rep.Masks[i].Name = b.Name
			}
		}
	}
	var sum func(io.Writer) error
	if *summary {
		sum = func(w io.Writer) error { return writeEvalSummary(w, rep) }
	}
	return writeReport(stdout, rep, *out, sum)
}

// presentLabels returns the positive integer labels present in data, ascending.
func presentLabels(data []float32) []int {
	seen := map[int]bool{}
	for _, v := range data {
		if l := math.Round(float64(v)); l > 0 && l <= math.MaxInt32 {
			seen[int(l)] = true
		}
	}
	out := make([]int, 0, len(seen))
	for l := range seen {
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}
