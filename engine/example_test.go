package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine"
	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
)

// Example_segment is an integrator's whole flow on the bundled phantom and tiny models:
// open the models, build the template set from one labelled CT, then localise and segment
// two organs of a query CT and write its label map.
//
// It has no Output line because it needs the ONNX Runtime library, which a machine may
// lack, and an Example cannot skip: TestExampleSegment runs it where the library loads and
// checks what it prints:
//
//	spleen: 1 box, mask not empty: true
//	liver: 1 box, mask not empty: true
//	mask written: phantom_ct_mask.nii.gz [128 128 96]
func Example_segment() {
	ctx := context.Background()
	// The models directory holds medlam_tiny*.onnx and sam_tiny*.onnx with their manifests;
	// the SAM models are opened at the first Segment call.
	e, err := engine.Open("../testdata/models", engine.Options{
		Localize: localize.Config{Logger: slog.New(slog.DiscardHandler)},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close()

	// Organs by label value, from the template's label-name file; keep two.
	all, err := engine.ReadOrgans("../testdata/phantom/phantom_labels.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	var organs []localize.Organ
	for _, o := range all {
		if o.Name == "spleen" || o.Name == "liver" {
			organs = append(organs, o)
		}
	}
	ts, err := e.BuildTemplates(ctx, []engine.TemplateInput{{
		ImagePath:  "../testdata/phantom/phantom_ct.nii.gz",
		LabelsPath: "../testdata/phantom/phantom_labels.nii.gz",
	}}, organs)
	if err != nil {
		fmt.Println(err)
		return
	}
	// The template set can be saved (ts.Save) and loaded later (e.LoadTemplates).

	out, err := os.MkdirTemp("", "medlsam-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(out)
	mask := filepath.Join(out, "phantom_ct_mask.nii.gz")
	res, err := e.Segment(ctx, ts, "../testdata/phantom/query/phantom_ct.nii.gz",
		engine.SegmentOptions{Mask: mask})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, o := range res.Segmentation.Organs {
		boxes := max(1, len(o.Chunks))
		fmt.Printf("%s: %d box, mask not empty: %v\n", o.Name, boxes, o.Voxels > 0)
	}
	for _, f := range res.Files {
		fmt.Println("mask written:", filepath.Base(f), res.Labels.Shape)
	}
}

// TestExampleSegment runs Example_segment where ONNX Runtime loads and checks its output;
// then it checks that a query segmented from its file, from memory and from the boxes found
// gives the same label map.
func TestExampleSegment(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: tiny MedLAM and SAM over the phantom")
	}
	// SAM needs ONNX Runtime whatever runs MedLAM: probe it by opening MedLAM on it.
	e, err := engine.Open("../testdata/models", engine.Options{MedLAMRuntime: engine.ORT,
		Localize: localize.Config{Logger: slog.New(slog.DiscardHandler)}})
	if errors.Is(err, backend.ErrUnavailable) {
		t.Skipf("ONNX Runtime unavailable: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	got := captureStdout(t, Example_segment)
	want := "spleen: 1 box, mask not empty: true\n" +
		"liver: 1 box, mask not empty: true\n" +
		"mask written: phantom_ct_mask.nii.gz [128 128 96]\n"
	if got != want {
		t.Errorf("Example_segment printed\n%s\nwant\n%s", got, want)
	}
	// The same flow from memory, and from the boxes found, gives the same label map.
	e, err = engine.Open("../testdata/models", engine.Options{
		Localize: localize.Config{Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	organs := []localize.Organ{{Label: 1, Name: "spleen"}}
	ts, err := e.BuildTemplates(ctx, []engine.TemplateInput{{
		ImagePath:  "../testdata/phantom/phantom_ct.nii.gz",
		LabelsPath: "../testdata/phantom/phantom_labels.nii.gz"}}, organs)
	if err != nil {
		t.Fatal(err)
	}
	const query = "../testdata/phantom/query/phantom_ct.nii.gz"
	fromFile, err := e.Segment(ctx, ts, query, engine.SegmentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := nifti.Read(query, nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fromMem, err := e.SegmentVolume(ctx, ts, q.Volume, q.Header, query,
		engine.SegmentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fromBoxes, err := e.SegmentBoxes(ctx, fromFile.Localization, q.Volume, q.Header, query,
		engine.SegmentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*engine.SegmentResult{"memory": fromMem,
		"boxes": fromBoxes} {
		if !reflect.DeepEqual(r.Labels.Data, fromFile.Labels.Data) ||
			!reflect.DeepEqual(r.Segmentation.Organs, fromFile.Segmentation.Organs) {
			t.Errorf("segmentation from %s differs from the file's", name)
		}
	}
	if fromFile.Times.Localize <= 0 || fromBoxes.Times.Localize != 0 {
		t.Errorf("localisation times: %v from the file, %v from boxes",
			fromFile.Times.Localize, fromBoxes.Times.Localize)
	}
	t.Logf("spleen: times %+v, SAM %+v, %d slices in %d encoder calls",
		fromFile.Times, fromFile.Segmentation.Times, fromFile.Segmentation.SlicesEncoded,
		fromFile.Segmentation.EncoderBatches)
}

// captureStdout returns what f prints on os.Stdout.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	defer func() { os.Stdout = saved }()
	f()
	w.Close()
	return <-done
}
