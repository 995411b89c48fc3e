package daemon

import (
	"context"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// maxSNMPTestWait bounds how long lockstepctl snmp test waits for the
// slowest manager.
const maxSNMPTestWait = time.Minute

// SNMPTest sends the snmpTest notification to every manager (behind what
// is queued for it) and waits, at most each manager's timeout times its
// attempts (maxSNMPTestWait in all), for every outcome.
func (s *Server) SNMPTest(ctx context.Context) (api.SNMPTestDoc, error) {
	wait := time.Second
	for _, m := range s.cfg.Load().SNMP.Managers {
		wait = max(wait, m.Timeout*time.Duration(m.Retries+1)+time.Second)
	}
	ctx, cancel := clock.WithTimeout(ctx, s.clock, min(wait, maxSNMPTestWait))
	defer cancel()
	results := s.snmp.Test(ctx, map[string]string{"requested_by": "lockstepctl snmp test"})
	doc := api.SNMPTestDoc{Managers: []api.SNMPTestManagerDoc{}}
	for _, r := range results {
		md := api.SNMPTestManagerDoc{Address: r.Address, Version: string(r.Version), Notification: string(r.Notification),
			Seq: r.Seq, Outcome: r.Outcome}
		if r.Err != nil {
			md.Error = r.Err.Error()
		}
		doc.Managers = append(doc.Managers, md)
	}
	notify.Log(s.log, notify.SNMPTest, "test notification sent to every snmp manager", "managers", len(doc.Managers))
	return doc, nil
}
