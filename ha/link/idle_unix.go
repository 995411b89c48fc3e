//go:build unix

package link

import (
	"net"
	"syscall"
)

// idle reports a connection with no byte waiting in its socket: peeked
// without reading and without blocking, through Control, which does not
// wait for a Read under way in another goroutine.
func idle(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true // closed
	}
	waiting := false
	err = rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		waiting = rerr == nil && n > 0
	})
	return err != nil || !waiting
}
