//go:build unix

package link

import "syscall"

// reuseAddr lets the connecting side bind a source port whose previous
// connection is in TIME_WAIT (SO_REUSEADDR).
func reuseAddr(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
