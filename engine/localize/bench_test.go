package localize

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// fullModel is the full-size MedLAM with random weights of `make models-medlam-full`, the
// network of issue 3's benchmark (not committed).
const fullModel = "../../models/full/medlam.onnx"

// Bounds of the benchmarks: full-size forward passes take seconds each on two cores, so the
// per-point stages run a few points and report seconds per point (run with -benchtime 1x).
const (
	benchRefinePoints = 2
	benchSearchPoints = 8
)

// runtimes are the CPU runtimes the network stages are timed on: sub-benchmarks "native"
// (engine/native) and "ort" (ONNX Runtime).
var runtimes = []string{"native", "ort"}

// fullNet opens the full-size models on runtime rt, or skips.
func fullNet(b *testing.B, rt string) *Network {
	b.Helper()
	if _, err := os.Stat(fullModel); err != nil {
		b.Skipf("full-size MedLAM absent (run `make models-medlam-full`): %v", err)
	}
	open := openNet
	if rt == "native" {
		open = openNative
	}
	net := open(b, fullModel)
	enc := open(b, "../../models/full/medlam-encoder.onnx")
	net.Encoder = enc.Full
	return net
}

// forRuntimes runs f as one sub-benchmark per runtime.
func forRuntimes(b *testing.B, f func(b *testing.B, net *Network)) {
	for _, rt := range runtimes {
		b.Run(rt, func(b *testing.B) { f(b, fullNet(b, rt)) })
	}
}

// benchQuery is the reference benchmark's volume: seeded noise in [0.1, 1) on a 3 mm LAS
// grid of 167 x 167 x 200 voxels (x, y, z), never air, so no coarse crop is redrawn.
func benchQuery(b *testing.B) *Grid {
	r := rand.New(rand.NewPCG(0, 1))
	v := lasVolume(b, 167, 167, 200, func(z, y, x int) float32 {
		return 0.1 + 0.9*r.Float32()
	})
	return prepare(b, v, "bench query", Image)
}

// BenchmarkStageCoarse times the coarse step: 10 random crops through the encoder-only
// network in one batch, their mean position.
func BenchmarkStageCoarse(b *testing.B) { forRuntimes(b, benchCoarse) }

func benchCoarse(b *testing.B, net *Network) {
	q := benchQuery(b)
	cfg := quiet
	cfg.BatchSize = DefaultCoarseCrops
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		steps := &HostSteps{Net: net, Query: q, Config: cfg}
		if err := coarse(context.Background(), steps, q, cfg, &Points{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStageTemplates times the template set of one organ of one template (six points:
// six full forward passes and their kernels) and reports seconds per point.
func BenchmarkStageTemplates(b *testing.B) { forRuntimes(b, benchTemplates) }

func benchTemplates(b *testing.B, net *Network) {
	s := scene{dims: [3]int{80, 80, 80}}
	tpl := []Template{{Image: s.image(b), Labels: s.labels(b)}}
	organs := sceneOrganList[:1]
	cfg := quiet
	cfg.BatchSize = 6
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := BuildTemplateSet(context.Background(), net, tpl, organs, cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/6, "s/point")
}

// BenchmarkStageRefineNetwork times the refinement's network calls (benchRefinePoints
// patches in one batch, all four outputs) and reports seconds per point.
func BenchmarkStageRefineNetwork(b *testing.B) { forRuntimes(b, benchRefineNetwork) }

func benchRefineNetwork(b *testing.B, net *Network) {
	q := benchQuery(b)
	d := paddedDims(q)
	names := OutputFeatures[:]
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := runBatched(context.Background(), net.Full, benchRefinePoints,
			benchRefinePoints, names,
			func(p int, dst []float32) error {
				q.cropPadded([3]int{d[0]/2 + 7*p, d[1] / 2, d[2]/2 - 5*p}, dst)
				return nil
			},
			func(int, []backend.Tensor) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/benchRefinePoints, "s/point")
}

// BenchmarkStageSimilarity times the similarity search of the full-size network's shapes
// (96 channels at 16^3, 32^3, 64^3 with 2^3, 4^3, 8^3 kernels) on random features for
// benchSearchPoints points and reports seconds per point. It needs no model.
func BenchmarkStageSimilarity(b *testing.B) {
	const c = 96
	r := rand.New(rand.NewPCG(3, 4))
	ts := &TemplateSet{Channels: [3]int{c, c, c}, Edges: [3]int{2, 4, 8}}
	var outs []backend.Tensor
	for s, e := range []int{16, 32, 64} {
		k := ts.Edges[s]
		ts.Kernels[s] = make([]float32, benchSearchPoints*c*k*k*k)
		for i := range ts.Kernels[s] {
			ts.Kernels[s][i] = r.Float32() - 0.5
		}
		f := backend.Tensor{Name: OutputFeatures[s],
			Shape: []int64{benchSearchPoints, c, int64(e), int64(e), int64(e)},
			Data:  make([]float32, benchSearchPoints*c*e*e*e)}
		for i := range f.Data {
			f.Data[i] = r.Float32() - 0.5
		}
		outs = append(outs, f)
	}
	search, err := newSearch(nil, ts)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := searchOffsets(search, ts, 0, outs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/benchSearchPoints, "s/point")
	b.ReportMetric(float64(kernels.Workers()), "workers")
}
