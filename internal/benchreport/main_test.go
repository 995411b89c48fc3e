package main

import (
	"errors"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/lockstep-io/lockstep/daemon/freeze
cpu: AMD EPYC
BenchmarkFreezeLimit
BenchmarkFreezeLimit-2   	       1	3560743523 ns/op	      8093 freeze-1sys-max-µs	      1623 freeze-1sys-p50-µs	      7301 freeze-1sys-p99-µs	       200.0 freeze-1sys-samples	         0 lost-samples	         8.423 p99-ratio-32v1
PASS
`

func TestParseAndTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []string // substrings of the table
		wantErr bool
	}{
		{name: "freeze limit", in: sample, want: []string{
			"| FreezeLimit | freeze-1sys | 1.62 ms | 7.30 ms | 8.09 ms | 200 |",
			"| FreezeLimit | p99-ratio-32v1 | 8.423 |",
			"| FreezeLimit | lost-samples | 0 |",
			"AMD EPYC",
		}},
		{name: "no prefix", in: "BenchmarkLag/w=1-2 1 5 ns/op 16258 max-µs 351.8 p50-µs 3151 p99-µs 2000 samples\n",
			want: []string{"| Lag/w=1 | latency | 0.35 ms | 3.15 ms | 16.26 ms | 2000 |"}},
		{name: "odd metrics", in: "BenchmarkX-2 1 5 ns/op 3\n", wantErr: true},
		{name: "bad value", in: "BenchmarkX-2 1 five ns/op\n", wantErr: true},
		{name: "nothing", in: "PASS\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := Parse(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse: %v, want error %v", err, tt.wantErr)
			}
			table := Table(r, r.CPU)
			for _, w := range tt.want {
				if !strings.Contains(table, w) {
					t.Errorf("table lacks %q:\n%s", w, table)
				}
			}
		})
	}
}

func TestSplice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		doc     string
		want    string
		wantErr error
	}{
		{name: "replaced", doc: "a\n" + beginMarker + "\nold\n" + endMarker + "\nb\n",
			want: "a\n" + beginMarker + "\nNEW\n" + endMarker + "\nb\n"},
		{name: "no markers", doc: "a\n", wantErr: ErrNoMarkers},
		{name: "reversed", doc: endMarker + beginMarker, wantErr: ErrNoMarkers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := Splice([]byte(tt.doc), "NEW\n")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Splice: %v, want %v", err, tt.wantErr)
			}
			if err == nil && string(out) != tt.want {
				t.Errorf("Splice = %q, want %q", out, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("BenchmarkX-2 1 5 ns/op\n")
	f.Fuzz(func(t *testing.T, in string) {
		r, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		_ = Table(r, "m")
	})
}
