package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Workers returns how many goroutines ParallelFor uses at most: runtime.GOMAXPROCS(0).
func Workers() int { return runtime.GOMAXPROCS(0) }

// ParallelFor calls fn(lo, hi) on disjoint ranges that together cover [0, n) exactly once,
// from up to Workers() goroutines, and returns when every call has returned. Ranges hold at
// least grain items (except possibly the last); a grain below 1 counts as 1. When one range
// covers everything, fn runs on the calling goroutine.
//
// Ranges are handed out dynamically, a few per worker, so a core that is busy elsewhere does
// not hold up the rest. fn must be safe to call concurrently on disjoint ranges and must not
// panic (a panic in a worker goroutine ends the program). ParallelFor does nothing when
// n <= 0.
func ParallelFor(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	workers := Workers()
	// Four ranges per worker balance the load without making ranges tiny.
	size := max(grain, (n+4*workers-1)/(4*workers))
	chunks := (n + size - 1) / size
	if chunks == 1 || workers == 1 {
		fn(0, n)
		return
	}
	workers = min(workers, chunks)
	var next atomic.Int64
	run := func() {
		for {
			c := int(next.Add(1) - 1)
			if c >= chunks {
				return
			}
			lo := c * size
			fn(lo, min(lo+size, n))
		}
	}
	var wg sync.WaitGroup
	wg.Add(workers - 1)
	for w := 1; w < workers; w++ {
		go func() {
			defer wg.Done()
			run()
		}()
	}
	run()
	wg.Wait()
}
