// Command lockstepd is the lockstep management server.
//
//	lockstepd [--config FILE] [--bus system|session|ADDRESS]
//	lockstepd --check-config [FILE]
//
// main only wires: flags, configuration, logging, signals; the server is
// package daemon. Exit codes: 0 clean stop, 1 failure, 2 usage or a bad
// configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/lockstep-io/lockstep/daemon"
	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/drivers/hmc"
	"github.com/lockstep-io/lockstep/drivers/zos"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/version"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// exitConfigRefused is the exit status of a refused configuration
// (EX_CONFIG of sysexits.h; systemd calls it CONFIG). The unit does not
// restart on it (RestartPreventExitStatus=): a restart cannot fix a
// file. It is not 2, which the Go runtime uses when it dies (a
// watchdog's SIGABRT), and which must restart.
const exitConfigRefused = 78

// usage heads --help; the packaging program builds lockstepd(8)'s
// synopsis and options from --help.
const usage = `usage: lockstepd [--config FILE] [--bus BUS]
       lockstepd --check-config [FILE]
       lockstepd --version

Flags:
`

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lockstepd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	cfgPath := fs.String("config", config.Path, "the configuration `FILE`")
	check := fs.Bool("check-config", false, "check the configuration (the file given as argument, else --config) and exit")
	bus := fs.String("bus", "", "the D-Bus `BUS` of the admin API: system, session or an address such as unix:path=/run/lockstep/bus (overrides [control] bus)")
	showVersion := fs.Bool("version", false, "print the version")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return 0
	} else if err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.Version)
		return 0
	}
	if *check {
		path := *cfgPath
		if fs.NArg() == 1 {
			path = fs.Arg(0)
		}
		cfg, err := config.Load(path)
		if err != nil {
			fmt.Fprintf(stderr, "%s: configuration refused:\n%v\n", path, err)
			return exitConfigRefused
		}
		for _, w := range cfg.Warnings {
			fmt.Fprintf(stderr, "warning: %v\n", w)
		}
		// The storage CA is required once the state holds storage
		// systems: the same refusal as at start, before a restart.
		warnings, err := daemon.CheckStorageConfig(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "%s: configuration refused:\n%v\n", path, err)
			return exitConfigRefused
		}
		for _, w := range warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
		fmt.Fprintf(stdout, "%s: configuration OK\n", path)
		return 0
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "lockstepd: %s: configuration refused:\n%v\n", *cfgPath, err)
		return exitConfigRefused
	}
	level := new(slog.LevelVar)
	level.Set(cfg.Log.Level)
	base := notify.NewHandler(stderr, level, !cfg.Log.Journal(os.Getenv))
	// withSyslog adds the remote collector of a configuration, if any.
	withSyslog := func(c *config.Config) slog.Handler {
		if t := c.Syslog.Target; t != nil {
			return slog.NewMultiHandler(base, notify.NewSyslogHandler(t.Scheme, t.HostPort(), c.Syslog.AppName, level, nil))
		}
		return base
	}
	out := notify.NewSwitch(withSyslog(cfg))
	logger := slog.New(out)
	opt := daemon.Options{Config: cfg, Logger: logger, Level: level, Version: version.Version, Drivers: drivers(), Consoles: consoles(),
		SwapHosts: swapHosts()}
	if *bus != "" {
		conn, err := client.Connect(*bus)
		if err != nil {
			logger.Error("admin bus", "bus", *bus, "err", err)
			return 1
		}
		defer conn.Close()
		opt.Bus = conn
	}
	srv, err := daemon.New(opt)
	if err != nil {
		logger.Error("lockstepd cannot start", "err", err)
		return 1
	}
	return serve(srv, *cfgPath, logger, func(c *config.Config) { out.Set(withSyslog(c)) })
}

// serve runs the server: the first SIGTERM or SIGINT stops it cleanly, a
// second kills; SIGHUP reloads the configuration, keeping the old one
// when the new one is invalid.
func serve(srv *daemon.Server, cfgPath string, logger *slog.Logger, relog func(*config.Config)) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	stopping := false
	for {
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("lockstepd stopped", "err", err)
				return 1
			}
			return 0
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				srv.Notify("RELOADING=1")
				if cfg, err := config.Load(cfgPath); err != nil {
					srv.Refuse(cfgPath, err)
				} else {
					relog(cfg) // the syslog target may have changed
					srv.Reload(cfg)
				}
				srv.Notify("READY=1")
			case stopping:
				logger.Error("second stop signal: exiting at once")
				return 1
			default:
				stopping = true
				cancel()
			}
		}
	}
}

// drivers are the storage drivers this build links, one factory per
// connection kind (docs/architecture.md, Storage connections); a kind left out is reported as not
// supported by this build.
func drivers() daemon.Drivers {
	return daemon.Drivers{
		hal.Direct: direct.Factory,
		hal.ZOS:    zos.Factory,
	}
}

// swapHosts opens the HyperSwap side of a z/OS connection (one
// connection to the host agent, apart from its storage systems').
func swapHosts() hal.SwapHostFactory { return zos.OpenSwapHost }

// consoles are the connections this build links that front several
// storage systems (one console per HMC connection, shared by them).
func consoles() daemon.Consoles {
	return daemon.Consoles{
		hal.HMC: hmc.OpenConsole,
	}
}
