// Package latency reports latency samples of a benchmark as percentiles,
// the way every lockstep benchmark prints its figures.
package latency

import (
	"slices"
	"testing"
	"time"
)

// Quantile is the q-quantile (0 to 1) of samples, which it sorts.
func Quantile(samples []time.Duration, q float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	return samples[int(q*float64(len(samples)-1))]
}

// Report prints p50, p99 and max of samples in microseconds, and their
// count, each metric named prefix + "-p50-µs" and so on ("" for none).
func Report(b *testing.B, prefix string, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	if prefix != "" {
		prefix += "-"
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(us(Quantile(samples, 0.50)), prefix+"p50-µs")
	b.ReportMetric(us(Quantile(samples, 0.99)), prefix+"p99-µs")
	b.ReportMetric(us(Quantile(samples, 1)), prefix+"max-µs")
	b.ReportMetric(float64(len(samples)), prefix+"samples")
}
