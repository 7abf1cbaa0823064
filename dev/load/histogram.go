// Package load is the closed-loop load generator behind cmd/loadgen and the
// benchmarks of tests/bench: N workers each send one request, wait for its
// answer and send the next, for a fixed duration or request count, recording
// every latency in a Histogram and every outcome by HTTP status.
package load

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's resolution: values below 2^subBits
// microseconds get a bucket each, larger ones share a bucket with values
// within 1/2^(subBits-1) (0.2%) of them.
const subBits = 10

// subCount is the number of buckets per power of two above the exact range.
const subCount = 1 << (subBits - 1)

// maxShift bounds the recorded range: 2^(subBits+maxShift) µs is about 2.4
// hours; longer latencies are recorded as that maximum.
const maxShift = 23

// Histogram records latencies with microsecond resolution and a bounded
// relative error (at most 0.2%) in a fixed number of buckets, so recording is
// allocation-free and histograms of several workers merge exactly. The zero
// value is not usable: call NewHistogram. It is not safe for concurrent use.
type Histogram struct {
	counts   []uint64
	total    uint64
	sum      time.Duration
	min, max time.Duration
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, 1<<subBits+maxShift*subCount)}
}

// index is the bucket of a value in microseconds.
func index(us uint64) int {
	if us < 1<<subBits {
		return int(us)
	}
	shift := bits.Len64(us) - subBits // >= 1
	if shift > maxShift {
		return 1<<subBits + maxShift*subCount - 1
	}
	mant := us >> shift // in [2^(subBits-1), 2^subBits)
	return 1<<subBits + (shift-1)*subCount + int(mant-subCount)
}

// upper is the largest value in microseconds that falls into bucket i.
func upper(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	j := i - 1<<subBits
	shift := j/subCount + 1
	mant := uint64(j%subCount + subCount)
	return (mant+1)<<shift - 1
}

// Record adds one latency; negative values count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[index(uint64(d/time.Microsecond))]++
	if h.total == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.total++
	h.sum += d
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Min is the smallest recorded value (0 when empty).
func (h *Histogram) Min() time.Duration { return h.min }

// Max is the largest recorded value (0 when empty).
func (h *Histogram) Max() time.Duration { return h.max }

// Mean is the exact mean of the recorded values (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return h.sum / time.Duration(h.total)
}

// Quantile returns the q-quantile (0 <= q <= 1) by the nearest-rank method:
// the smallest recorded value v such that at least q of all values are <= v,
// reported as its bucket's upper bound, clamped to [Min, Max]. So it is
// exact below 1.024 ms and at most 0.2% high above. An empty (or nil)
// histogram answers 0; q outside [0, 1] is clamped.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h == nil || h.total == 0 {
		return 0
	}
	q = math.Max(0, math.Min(1, q))
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank == 0 {
		return h.min
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := time.Duration(upper(i)) * time.Microsecond
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}
