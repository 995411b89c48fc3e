package notify

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/config"
)

// BenchmarkEventToSnmptrapd measures, for each kind of manager, the time
// from Send to the line snmptrapd logs for the notification (read from
// its stdout), over loopback, one event at a time, and reports p50 and
// p99. Target: p99 <= 100 ms.
func BenchmarkEventToSnmptrapd(b *testing.B) {
	const samples = 500
	for _, tc := range []struct {
		name    string
		manager func(b *testing.B, r *snmpRig, port int) config.Manager
		conf    func(engine string) string
	}{
		{"v2c-trap", func(b *testing.B, r *snmpRig, port int) config.Manager { return r.v2c(b, port, config.Trap, "public") },
			func(string) string { return "disableAuthorization yes\n" }},
		{"v2c-inform", func(b *testing.B, r *snmpRig, port int) config.Manager {
			return r.v2c(b, port, config.Inform, "public")
		},
			func(string) string { return "disableAuthorization yes\n" }},
		{"v3-trap-sha256-aes", func(b *testing.B, r *snmpRig, port int) config.Manager {
			return r.v3(b, port, config.Trap, "lsuser", config.SHA256, config.AES, authPass, privPass)
		}, func(engine string) string {
			return fmt.Sprintf("createUser -e %s lsuser SHA-256 %s AES %s\nauthUser log lsuser priv\n", engine, authPass, privPass)
		}},
		{"v3-inform-sha256-aes", func(b *testing.B, r *snmpRig, port int) config.Manager {
			return r.v3(b, port, config.Inform, "lsuser", config.SHA256, config.AES, authPass, privPass)
		}, func(string) string {
			return fmt.Sprintf("createUser lsuser SHA-256 %s AES %s\nauthUser log lsuser priv\n", authPass, privPass)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := newSNMPRig(b)
			port := freeUDPPort(b)
			r.cfg.Managers = []config.Manager{tc.manager(b, r, port)}
			s, err := NewSNMP(r.cfg, "bench", func() string { return "active" }, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			engine := ""
			if r.cfg.Managers[0].Version == config.V3 {
				engine = r.engineHex(b)
			}
			d := startTrapd(b, port, tc.conf(engine))
			runSNMP(b, s)
			for b.Loop() {
				lat := make([]time.Duration, 0, samples)
				base := d.count()
				for i := range samples {
					start := time.Now()
					s.Send(GroupPartial, map[string]string{"sample": strconv.Itoa(i)})
					got := d.waitNotifications(b, base+i+1)
					lat = append(lat, got[base+i].at.Sub(start))
				}
				slices.Sort(lat)
				ms := func(q float64) float64 {
					return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000
				}
				b.ReportMetric(ms(0.50), "p50-ms")
				b.ReportMetric(ms(0.99), "p99-ms")
				b.ReportMetric(ms(1), "max-ms")
			}
			if st := s.Stats()[0]; st.Dropped != 0 || st.Failures != 0 {
				b.Fatalf("stats %+v", st)
			}
		})
	}
}
