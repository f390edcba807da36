package gpu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

// oomStages fails Localise with an out-of-memory error when the batch is above limit.
type oomStages struct {
	*fakeStages
	batch, limit int
}

func (o oomStages) Localise(ctx context.Context, s DevStream, vol DevMem, l Loaded,
	job Job) ([]Organ, *localize.Result, error) {
	if o.batch > o.limit {
		return nil, nil, fmt.Errorf("encoder batch %d: %w", o.batch, trt.ErrOutOfMemory)
	}
	return o.fakeStages.Localise(ctx, s, vol, l, job)
}

func TestPipelineWorker(t *testing.T) {
	var opened []int
	released := 0
	w := &PipelineWorker{Open: func(batch int) (*Scheduler, func() error, error) {
		opened = append(opened, batch)
		g := newFakeGPU()
		st := oomStages{newFakeStages(g, 3, time.Millisecond), batch, 4}
		return &Scheduler{GPU: g, Stages: st}, func() error { released++; return nil }, nil
	}}
	req, err := json.Marshal(Batch{Jobs: fakeJobs(3)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Too large a batch: the request fails as out of memory, for the supervisor to halve.
	if _, err := w.Handle(ctx, req, 8); !errors.Is(err, trt.ErrOutOfMemory) {
		t.Fatalf("batch 8: err %v, want ErrOutOfMemory", err)
	}
	// Halved: it runs, reopening the pipeline; the same batch again reuses it.
	for range 2 {
		out, err := w.Handle(ctx, req, 4)
		if err != nil {
			t.Fatalf("batch 4: %v", err)
		}
		var res []Result
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatal(err)
		}
		if len(res) != 3 || res[2].Err != "" || res[2].Organs[0].Label != 3 {
			t.Errorf("results %+v", res)
		}
	}
	if want := []int{8, 4}; fmt.Sprint(opened) != fmt.Sprint(want) || released != 1 {
		t.Errorf("opened %v, released %d; want %v, 1", opened, released, want)
	}
	if err := w.Close(); err != nil || released != 2 {
		t.Errorf("Close: %v, released %d", err, released)
	}
	if err := w.Close(); err != nil || released != 2 {
		t.Errorf("second Close: %v, released %d", err, released)
	}

	// Bad requests are refused without opening anything.
	for _, bad := range []string{`{"jobs": []}`, `[1, 2]`} {
		if _, err := w.Handle(ctx, json.RawMessage(bad), 4); err == nil {
			t.Errorf("request %s accepted", bad)
		}
	}
	if len(opened) != 2 {
		t.Errorf("bad requests opened the pipeline: %v", opened)
	}
}
