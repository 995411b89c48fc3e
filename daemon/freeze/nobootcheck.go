//go:build !bootcheck

package freeze

// bootcheckWedge is the boot test's hook (bootcheck.go); release builds
// have none.
func (c *Core) bootcheckWedge() {}
