package main

import (
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
)

// writeSegmentSummary prints what segment did, for a person: per query, each organ's box
// (voxel indices, inclusive), the slices segmented and the voxels labelled, then the SAM
// call counts and the time per stage.
func writeSegmentSummary(w io.Writer, rep segmentReport) error {
	for _, q := range rep.Queries {
		s := q.Segmentation
		fmt.Fprintf(w, "query %s: shape %v, spacing %v mm, decoder layout %s\n",
			filepath.Base(q.Query), s.Shape, s.Spacing, s.Layout)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  label\tname\tbox min (i,j,k)\tbox max\tslices\tvoxels\t"+
			"mean IoU pred.\t")
		for _, o := range s.Organs {
			fmt.Fprintf(tw, "  %d\t%s\t%v\t%v\t%d..%d (%d)\t%d\t%.3f\t\n", o.Label, o.Name,
				o.Box.Min, o.Box.Max, o.FirstSlice, o.LastSlice, o.Slices, o.Voxels,
				o.MeanIoUPrediction)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "  SAM: %d boxes on %d distinct slices; %d slices encoded in %d "+
			"encoder calls (batch %d); %d decoder calls\n", s.BoxesDecoded, s.SlicesEncoded,
			s.SlicesEncoded, s.EncoderBatches, s.Batch, s.DecoderCalls)
		t := s.Times
		fmt.Fprintf(w, "  time (ms): window %.0f, preprocess %.0f, encoder %.0f, decoder %.0f, "+
			"post %.0f, total %.0f\n", t.Window, t.Preprocess, t.Encoder, t.Decoder, t.Post,
			t.Total)
		for _, f := range q.Output {
			fmt.Fprintf(w, "  wrote %s\n", f)
		}
	}
	return nil
}

// writeEvalSummary prints the scores of an eval report as a table: Dice and HD95 per organ
// mask, IoU and wall distance per box, and the means; "-" marks an undefined score.
func writeEvalSummary(w io.Writer, rep evalReport) error {
	opt := func(p *float64, format string) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf(format, *p)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(rep.Masks) > 0 {
		fmt.Fprintf(tw, "masks %s vs %s\n", rep.Prediction, rep.Labels)
		fmt.Fprintln(tw, "  label\tname\tDice\tHD95 (mm)\tpredicted voxels\treference voxels\t")
		for _, s := range rep.Masks {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\t%d\t\n", s.Label, s.Name,
				opt(s.Dice, "%.4f"), opt(s.HD95, "%.2f"), s.PredVoxels, s.RefVoxels)
		}
		fmt.Fprintf(tw, "  mean\t\t%s\t%s\t\t\t\n", opt(rep.MeanDice, "%.4f"),
			opt(rep.MeanHD95, "%.2f"))
	}
	if len(rep.Boxes) > 0 {
		fmt.Fprintf(tw, "boxes vs %s\n", rep.Labels)
		fmt.Fprintln(tw, "  label\tname\tIoU\twall distance (mm)\t")
		for _, b := range rep.Boxes {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t\n", b.Label, b.Name, opt(b.IoU, "%.4f"),
				opt(b.WD, "%.2f"))
		}
	}
	return tw.Flush()
}
