// Command lockstepctl is the storage administrator's command line for
// lockstepd, over its D-Bus admin API. The command tree is package cli,
// which the packaging program also reads for the man pages and the shell
// completion.
//
// Exit codes: 0 done, 1 refused or failed (the message says why), 2 usage.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/lockstep-io/lockstep/cmd/lockstepctl/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Run(ctx, args, stdout, stderr, os.Getenv)
}
