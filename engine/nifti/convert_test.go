package nifti

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

// TestParallelRangesFirstError checks that every item is visited once and that, when
// several ranges fail, the error of the lowest one is returned whatever the scheduling.
func TestParallelRangesFirstError(t *testing.T) {
	cases := []struct {
		name     string
		n, grain int
		procs    int
		fail     []int // items whose range fails
		want     int   // lowest failing item, -1 for none
	}{
		{"no error", 10000, 100, 4, nil, -1},
		{"one", 10000, 100, 4, []int{5000}, 5000},
		{"several", 10000, 100, 4, []int{9999, 4321, 7000}, 4321},
		{"sequential", 500, 1000, 1, []int{300, 20}, 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old := runtime.GOMAXPROCS(c.procs)
			defer runtime.GOMAXPROCS(old)
			hits := make([]int32, c.n)
			err := parallelRanges(c.n, c.grain, func(lo, hi int) error {
				var first error
				for i := lo; i < hi; i++ {
					atomic.AddInt32(&hits[i], 1)
					for _, f := range c.fail {
						if f == i && first == nil {
							first = fmt.Errorf("item %d", i)
						}
					}
				}
				return first
			})
			for i, h := range hits {
				if h != 1 {
					t.Fatalf("item %d visited %d times", i, h)
				}
			}
			switch {
			case c.want < 0 && err != nil:
				t.Fatalf("error %v, want none", err)
			case c.want >= 0 && (err == nil || err.Error() != fmt.Sprintf("item %d", c.want)):
				t.Fatalf("error %v, want item %d", err, c.want)
			}
		})
	}
}
