//go:build !unix

package link

import "syscall"

func reuseAddr(_, _ string, _ syscall.RawConn) error { return nil }
