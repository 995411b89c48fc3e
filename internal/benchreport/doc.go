// Command benchreport turns the output of `make bench` (bench.out) into
// the figures docs/performance.md quotes: it reads `go test -bench`
// output on stdin and rewrites the part of the document between the
// markers
//
//	<!-- bench:begin -->
//	<!-- bench:end -->
//
// with one table row per benchmark (its latency percentiles, ratios and
// counts), and a line on the machine the run was made on (CPU, cores,
// load average at the time of the report). Nothing else of the document
// is touched, so the prose around the figures stays hand-written while
// the figures themselves are never copied by hand.
//
//	go run ./internal/benchreport -doc docs/performance.md < bench.out
package main
