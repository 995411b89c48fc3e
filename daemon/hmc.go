package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/ha/link"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/secretfile"
)

// HMC connections (docs/architecture.md, Storage connections): defined once with hmc add, one console
// per connection shared by every storage system it fronts, the systems
// discovered from it and journaled (hmc-attached) so that sessions may
// name them, the standby knows them, and a restart finds them before
// the HMCs answer.

// reconcileDrivers opens and closes drivers after the registry changed
// and hands the result to the engine and the core.
func (s *Server) reconcileDrivers(ctx context.Context, d *duties) []string {
	s.drivers.reconcile()
	s.drivers.engineSystems()
	if err := d.core.SetSystems(ctx, s.drivers.systems()); err != nil {
		return []string{err.Error()}
	}
	return nil
}

func (s *Server) HMCAdd(ctx context.Context, spec api.HMCSpec) ([]string, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if s.roots == nil {
		return nil, fmt.Errorf("%w: %w: set it in [storage] of the configuration to the PEM file of the CA that signs "+
			"the HMCs' certificates, and restart lockstepd", api.ErrRefused, ErrNoStorageCA)
	}
	if spec.PasswordFile != "" {
		if err := secretfile.Check(spec.PasswordFile); err != nil {
			return nil, fmt.Errorf("%w: HMC connection %q: %w", api.ErrRefused, spec.Name, err)
		}
	}
	d, err := s.actingPeriod()
	if err != nil {
		return nil, err
	}
	if err := s.proposeRegistry(ctx, registry.Record{Kind: registry.KindHMCAdded, HMC: &registry.HMC{Name: spec.Name,
		Addresses: spec.Addresses, User: spec.User, PasswordFile: spec.PasswordFile}}); err != nil {
		return nil, err
	}
	warnings := s.reconcileDrivers(ctx, d)
	s.sources.refresh()
	s.emit(notify.ConfigChanged, fmt.Sprintf("HMC connection %s added", spec.Name), "hmc", spec.Name)
	return orEmpty(warnings), nil
}

func (s *Server) HMCRemove(ctx context.Context, name string, force bool) ([]string, error) {
	return s.removeConsole(ctx, "HMC", "hmc", name, func(sessions registry.Sessions) (registry.Removal, error) {
		return s.registry().RemoveHMC(name, sessions, force)
	})
}

// removeConsole is the removal of a connection that serves several
// systems (an HMC or a z/OS host): the registry's rules decide (remove,
// with the sessions that use each system), the sessions a forced removal
// of the last TCP/IP connection leaves without heartbeat are suspended
// (suspendForRemoval), then the record, the drivers and the trap sources
// follow.
func (s *Server) removeConsole(ctx context.Context, what, key, name string,
	remove func(registry.Sessions) (registry.Removal, error)) ([]string, error) {
	d, err := s.actingPeriod()
	if err != nil {
		return nil, err
	}
	rm, err := remove(s.sessionsUsing())
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return nil, fmt.Errorf("%w: %w", api.ErrNotFound, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", api.ErrRefused, err)
	}
	warnings := append(rm.Warnings, s.suspendForRemoval(ctx, d, rm)...)
	if err := s.proposeRegistry(ctx, rm.Record); err != nil {
		return nil, removalNotRecorded(rm, err)
	}
	warnings = append(warnings, s.reconcileDrivers(ctx, d)...)
	s.sources.refresh()
	s.emit(notify.ConfigChanged, fmt.Sprintf("%s connection %s removed", what, name), key, name)
	return orEmpty(warnings), nil
}

func (s *Server) HMCList(ctx context.Context) ([]api.HMCDoc, error) {
	out := []api.HMCDoc{}
	for _, h := range s.registry().HMCs() {
		out = append(out, s.hmcDoc(h))
	}
	return out, nil
}

func (s *Server) HMCShow(ctx context.Context, name string) (api.HMCDoc, error) {
	h, ok := s.registry().HMC(name)
	if !ok {
		return api.HMCDoc{}, fmt.Errorf("%w: HMC connection %q", api.ErrNotFound, name)
	}
	return s.hmcDoc(h), nil
}

// hmcDoc is h with this server's view of its HMCs (local connection
// status) and, on an HA pair, the partner's (remote connection status),
// as the partner last sent it over the HA link (link.View); PartnerDetail
// says why there is none (no partner, not connected, not reported yet).
func (s *Server) hmcDoc(h registry.HMC) api.HMCDoc {
	doc := api.HMCDoc{Name: h.Name, Addresses: h.Addresses, User: h.User, Attached: h.Attached,
		Consoles: s.consoleDocs(h)}
	if doc.Attached == nil {
		doc.Attached = []hal.Serial{}
	}
	view, why := s.ha.partnerView()
	if why != "" {
		doc.PartnerDetail = why
		return doc
	}
	doc.Partner = []api.HMCConsoleDoc{}
	for i, a := range h.Addresses {
		c := api.HMCConsoleDoc{Addr: a, State: "unknown", Detail: "the partner has not reported this HMC (it may not know the connection yet)",
			Attached: []hal.Serial{}}
		for _, e := range view.Entries {
			if e.Conn == h.Name && int(e.Endpoint) == i {
				c.Name, c.State, c.Detail = e.Name, e.State.String(), e.Detail
			}
		}
		doc.Partner = append(doc.Partner, c)
	}
	return doc
}

// consoleDocs are this server's connections to h's HMCs.
func (s *Server) consoleDocs(h registry.HMC) []api.HMCConsoleDoc {
	var out []api.HMCConsoleDoc
	eps := s.drivers.consoleStatus(h.Name)
	for i, a := range h.Addresses {
		c := api.HMCConsoleDoc{Addr: a, State: "disconnected", Detail: "not opened on this server", Attached: []hal.Serial{}}
		if i < len(eps) {
			e := eps[i]
			c.Name, c.Detail = e.Name, e.Detail
			if e.Attached != nil {
				c.Attached = e.Attached
			}
			switch {
			case e.Up:
				c.State, c.Detail = "connected", ""
			case e.Detail == "not connected yet":
				c.State = "connecting"
			}
		}
		out = append(out, c)
	}
	return out
}

// consoleView is this server's connections to the HMCs of every HMC
// connection, as the HA link carries them to the partner (link.View),
// texts cut to what the link allows.
func (s *Server) consoleView() link.View {
	v := link.View{}
	states := map[string]link.ViewState{"connected": link.ViewConnected, "connecting": link.ViewConnecting,
		"disconnected": link.ViewDisconnected}
	for _, h := range s.registry().HMCs() {
		if len(h.Name) > link.MaxName {
			continue
		}
		for i, c := range s.consoleDocs(h) {
			if len(v.Entries) == link.MaxViewEntries || i > 255 {
				return v
			}
			v.Entries = append(v.Entries, link.ViewEntry{Conn: h.Name, Endpoint: uint8(i), Name: cut(c.Name, link.MaxName),
				State: states[c.State], Detail: cut(c.Detail, link.MaxText)})
		}
	}
	return v
}

// cut is s cut to at most n bytes, on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// discovered journals what HMC connection name fronts now when it
// differs from the registry, on the acting server only (a standby learns
// it from the journal). It runs off the driver's goroutine: a journal
// write waits for the disk and the standby.
func (s *Server) discovered(name string, serials []hal.Serial) {
	h, ok := s.registry().HMC(name)
	if !ok || slices.Equal(h.Attached, serials) || s.acting.current() == nil {
		return
	}
	s.drivers.goBackground(func(ctx context.Context) {
		d, err := s.actingPeriod()
		if err != nil {
			return
		}
		if h, ok := s.registry().HMC(name); !ok || slices.Equal(h.Attached, serials) {
			return
		}
		if err := s.proposeRegistry(ctx, registry.Record{Kind: registry.KindHMCAttached, Name: name,
			Serials: serials}); err != nil {
			s.log.Error("HMC discovery not recorded", "hmc", name, "err", err)
			return
		}
		s.log.Info("storage systems discovered behind an HMC connection", "hmc", name, "serials", fmt.Sprint(serials))
		s.reconcileDrivers(ctx, d)
		s.sources.refresh()
		s.emit(notify.ConfigChanged, fmt.Sprintf("HMC connection %s fronts %d storage systems", name, len(serials)), "hmc", name)
	})
}
