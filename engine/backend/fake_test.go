package backend

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// newScaleFake returns a Fake with x [B,2] -> double [B,2] = 2x, total [B] = x0+x1, plus a
// static input s [1] added to total.
func newScaleFake() *Fake {
	return NewFake(
		[]TensorInfo{
			{Name: "x", Shape: []int64{-1, 2}, Type: Float32},
			{Name: "s", Shape: []int64{1}, Type: Float32},
		},
		[]TensorInfo{
			{Name: "double", Shape: []int64{-1, 2}, Type: Float32},
			{Name: "total", Shape: []int64{-1}, Type: Float32},
		},
		func(in map[string]Tensor, batch int64) (map[string][]float32, error) {
			x, s := in["x"].Data, in["s"].Data[0]
			d := make([]float32, len(x))
			t := make([]float32, batch)
			for i, v := range x {
				d[i] = 2 * v
				t[i/2] += v
			}
			for i := range t {
				t[i] += s
			}
			return map[string][]float32{"double": d, "total": t}, nil
		})
}

func TestFakeRun(t *testing.T) {
	f := newScaleFake()
	tests := []struct {
		x     []float32
		names []string
		want  string
	}{
		{[]float32{1, 2}, []string{"double", "total"}, "double[1 2]=[2 4] total[1]=[13]"},
		{[]float32{1, 2, 3, 4}, []string{"total"}, "total[2]=[13 17]"},
		{[]float32{0, 1, 2, 3, 4, 5}, []string{"total", "double"},
			"total[3]=[11 15 19] double[3 2]=[0 2 4 6 8 10]"},
	}
	for _, tc := range tests {
		n := int64(len(tc.x) / 2)
		outs, err := f.Run([]Tensor{
			{Name: "s", Shape: []int64{1}, Data: []float32{10}},
			{Name: "x", Shape: []int64{n, 2}, Data: tc.x},
		}, tc.names)
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, o := range outs {
			parts = append(parts, fmt.Sprintf("%s%v=%v", o.Name, o.Shape, o.Data))
		}
		if got := strings.Join(parts, " "); got != tc.want {
			t.Errorf("Run(batch %d) = %s, want %s", n, got, tc.want)
		}
	}
	if f.Calls() != 3 || fmt.Sprint(f.Batches()) != "[1 2 3]" {
		t.Errorf("Calls %d, Batches %v; want 3, [1 2 3]", f.Calls(), f.Batches())
	}
}

func TestFakeRefuses(t *testing.T) {
	f := newScaleFake()
	s := Tensor{Name: "s", Shape: []int64{1}, Data: []float32{0}}
	x := func(shape []int64, n int) Tensor {
		return Tensor{Name: "x", Shape: shape, Data: make([]float32, n)}
	}
	both := []string{"double", "total"}
	tests := []struct {
		name    string
		in      []Tensor
		names   []string
		isShape bool
	}{
		{"static dim", []Tensor{s, x([]int64{1, 3}, 3)}, both, true},
		{"rank", []Tensor{s, x([]int64{2}, 2)}, both, true},
		{"zero batch", []Tensor{s, x([]int64{0, 2}, 0)}, both, true},
		{"data length", []Tensor{s, x([]int64{2, 2}, 3)}, both, true},
		{"overflow", []Tensor{s, x([]int64{1 << 62, 1 << 62}, 0)}, both, true},
		{"missing input", []Tensor{s}, both, true},
		{"input twice", []Tensor{s, s}, both, false},
		{"unknown output", []Tensor{s, x([]int64{1, 2}, 2)}, []string{"mean"}, false},
		{"no outputs", []Tensor{s, x([]int64{1, 2}, 2)}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.Run(tc.in, tc.names)
			if err == nil {
				t.Fatal("Run accepted bad input")
			}
			if errors.Is(err, ErrShape) != tc.isShape {
				t.Errorf("errors.Is(ErrShape) = %v, want %v: %v", !tc.isShape, tc.isShape, err)
			}
		})
	}
	if f.Calls() != 0 {
		t.Errorf("the function ran %d times on bad input", f.Calls())
	}
}

func TestFakeBadFunctionAndClose(t *testing.T) {
	f := NewFake([]TensorInfo{{Name: "x", Shape: []int64{-1}, Type: Float32}},
		[]TensorInfo{{Name: "y", Shape: []int64{-1}, Type: Float32}},
		func(in map[string]Tensor, batch int64) (map[string][]float32, error) {
			return map[string][]float32{"y": make([]float32, batch+1)}, nil
		})
	in := []Tensor{{Name: "x", Shape: []int64{2}, Data: []float32{1, 2}}}
	if _, err := f.Run(in, []string{"y"}); !errors.Is(err, ErrShape) {
		t.Errorf("wrong-sized function output: %v, want ErrShape", err)
	}
	for range 2 {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Run(in, []string{"y"}); err == nil {
		t.Error("Run after Close succeeded")
	}
	if f.Closes() != 2 {
		t.Errorf("Closes = %d, want 2", f.Closes())
	}
}

func TestFakeConcurrent(t *testing.T) {
	f := newScaleFake()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := int64(w%3 + 1)
			_, err := f.Run([]Tensor{
				{Name: "s", Shape: []int64{1}, Data: []float32{1}},
				{Name: "x", Shape: []int64{n, 2}, Data: make([]float32, 2*n)},
			}, []string{"total"})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	sum := int64(0)
	for _, b := range f.Batches() {
		sum += b
	}
	if f.Calls() != 8 || sum != 1+2+3+1+2+3+1+2 {
		t.Errorf("Calls %d, batch sum %d; want 8, 15", f.Calls(), sum)
	}
}

// TestFakeScalarInput checks that a rank-0 input is accepted with one value and refused
// with any other count, without the batch logic indexing its missing dimension 0.
func TestFakeScalarInput(t *testing.T) {
	f := NewFake([]TensorInfo{{Name: "k", Shape: []int64{}, Type: Float32}},
		[]TensorInfo{{Name: "y", Shape: []int64{1}, Type: Float32}},
		func(in map[string]Tensor, batch int64) (map[string][]float32, error) {
			return map[string][]float32{"y": {in["k"].Data[0] + float32(batch)}}, nil
		})
	tests := []struct {
		data []float32
		want string // "" for an error
	}{
		{[]float32{4}, "[5]"},
		{[]float32{4, 5}, ""},
		{nil, ""},
	}
	for _, tc := range tests {
		outs, err := f.Run([]Tensor{{Name: "k", Shape: []int64{}, Data: tc.data}}, []string{"y"})
		if tc.want == "" {
			if !errors.Is(err, ErrShape) {
				t.Errorf("scalar with %d values: %v, want ErrShape", len(tc.data), err)
			}
			continue
		}
		if err != nil || fmt.Sprint(outs[0].Data) != tc.want {
			t.Errorf("scalar %v: %v, %v; want %s", tc.data, outs, err, tc.want)
		}
	}
}

type limitedFake struct {
	*Fake
	most int64
}

func (l limitedFake) MaxBatch() int64 { return l.most }

func TestCapBatch(t *testing.T) {
	f := NewFake(nil, nil, nil)
	for _, c := range []struct {
		m           Model
		batch, want int
	}{{f, 100, 100}, {limitedFake{f, 8}, 100, 8}, {limitedFake{f, 8}, 5, 5},
		{limitedFake{f, 0}, 5, 5}} {
		if got := CapBatch(c.m, c.batch); got != c.want {
			t.Errorf("CapBatch(%T, %d) = %d, want %d", c.m, c.batch, got, c.want)
		}
	}
}
