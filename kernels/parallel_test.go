package kernels

import (
	"runtime"
	"sync"
	"testing"
)

func TestParallelForCoversOnce(t *testing.T) {
	tests := []struct {
		name     string
		n, grain int
		procs    int
	}{
		{"empty", 0, 1, 4},
		{"negative", -3, 1, 4},
		{"one", 1, 1, 4},
		{"small grain", 1000, 1, 4},
		{"grain above n", 10, 100, 4},
		{"zero grain", 37, 0, 3},
		{"single proc", 97, 2, 1},
		{"odd split", 1001, 7, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := runtime.GOMAXPROCS(tc.procs)
			defer runtime.GOMAXPROCS(old)
			hits := make([]int, max(tc.n, 0))
			var mu sync.Mutex
			calls := 0
			ParallelFor(tc.n, tc.grain, func(lo, hi int) {
				if lo >= hi {
					t.Errorf("empty range [%d, %d)", lo, hi)
				}
				mu.Lock()
				calls++
				mu.Unlock()
				for i := lo; i < hi; i++ {
					hits[i]++ // ranges are disjoint, so no race
				}
			})
			for i, h := range hits {
				if h != 1 {
					t.Fatalf("item %d visited %d times", i, h)
				}
			}
			if tc.n <= 0 && calls != 0 {
				t.Fatalf("fn called %d times for n = %d", calls, tc.n)
			}
		})
	}
}

func TestParallelForGrain(t *testing.T) {
	old := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(old)
	const n, grain = 1000, 64
	var mu sync.Mutex
	ParallelFor(n, grain, func(lo, hi int) {
		mu.Lock()
		defer mu.Unlock()
		if hi-lo < grain && hi != n {
			t.Errorf("range [%d, %d) smaller than grain %d", lo, hi, grain)
		}
	})
}
