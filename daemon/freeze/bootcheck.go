//go:build bootcheck

package freeze

import "os"

// BootcheckWedgeFile, in a build with the bootcheck tag only (make
// boot-test builds its packages so; release builds do not), wedges the
// core's loop for good the first time a tick finds it: the loop stops
// while the rest of the process runs on, which is what the systemd
// watchdog must notice and a SIGSTOP could not imitate (a stopped process
// pings nothing, whatever its watchdog does). The file is consumed, so
// the daemon systemd restarts runs normally.
const BootcheckWedgeFile = "/run/lockstep/bootcheck-wedge-core"

func (c *Core) bootcheckWedge() {
	if os.Remove(BootcheckWedgeFile) != nil {
		return
	}
	c.log.Error("bootcheck: the freeze core loop wedges on purpose", "file", BootcheckWedgeFile)
	select {}
}
