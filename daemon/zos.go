package daemon

import (
	"context"
	"fmt"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/internal/secretfile"
)

// z/OS connections (docs/architecture.md, Storage connections): defined
// once per z/OS host with zos add (zos-added), with the storage systems
// the host has online named by the administrator; each of them then has
// the host as one of its connections, usable only by a server in the
// host's sysplex. The systems are not discovered from the host.

func (s *Server) ZOSAdd(ctx context.Context, spec api.ZOSSpec) ([]string, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if s.roots == nil {
		return nil, fmt.Errorf("%w: %w: set it in [storage] of the configuration to the PEM file of the CA that signs "+
			"the z/OS hosts' certificates, and restart lockstepd", api.ErrRefused, ErrNoStorageCA)
	}
	if spec.PasswordFile != "" {
		if err := secretfile.Check(spec.PasswordFile); err != nil {
			return nil, fmt.Errorf("%w: z/OS connection %q: %w", api.ErrRefused, spec.Name, err)
		}
	}
	d, err := s.actingPeriod()
	if err != nil {
		return nil, err
	}
	if err := s.proposeRegistry(ctx, registry.Record{Kind: registry.KindZOSAdded, ZOS: &registry.ZOS{Name: spec.Name,
		Addresses: spec.Addresses, Sysplex: spec.Sysplex, User: spec.User, PasswordFile: spec.PasswordFile,
		Systems: spec.Systems}}); err != nil {
		return nil, err
	}
	warnings := s.reconcileDrivers(ctx, d)
	for _, serial := range spec.Systems {
		if _, running := s.drivers.get(serial); !running {
			if why := s.drivers.reach.failed(serial); why != "" {
				warnings = append(warnings, why)
			}
		}
	}
	s.sources.refresh()
	if s.registry().Heartbeat() {
		warnings = append(warnings, s.registry().HeartbeatWarnings()...)
	}
	s.emit(notify.ConfigChanged, fmt.Sprintf("z/OS connection %s added", spec.Name), "zos", spec.Name)
	return orEmpty(warnings), nil
}

func (s *Server) ZOSRemove(ctx context.Context, name string) ([]string, error) {
	// A z/OS connection carries no heartbeat: its removal never leaves
	// a session without one (RemoveZOS), so nothing is suspended.
	return s.removeConsole(ctx, "z/OS", "zos", name, func(sessions registry.Sessions) (registry.Removal, error) {
		return s.registry().RemoveZOS(name, sessions)
	})
}

func (s *Server) ZOSList(ctx context.Context) ([]api.ZOSDoc, error) {
	out := []api.ZOSDoc{}
	for _, z := range s.registry().ZOSs() {
		out = append(out, s.zosDoc(z))
	}
	return out, nil
}

func (s *Server) ZOSShow(ctx context.Context, name string) (api.ZOSDoc, error) {
	z, ok := s.registry().ZOS(name)
	if !ok {
		return api.ZOSDoc{}, fmt.Errorf("%w: z/OS connection %q", api.ErrNotFound, name)
	}
	return s.zosDoc(z), nil
}

// zosDoc is z with, for each system it has online, this server's view
// of the connection as storage show gives it (the sysplex gate's reason
// when unusable here).
func (s *Server) zosDoc(z registry.ZOS) api.ZOSDoc {
	doc := api.ZOSDoc{Name: z.Name, Addresses: z.Addresses, Sysplex: z.Sysplex, User: z.User, Systems: []api.ZOSSystemDoc{}}
	for _, serial := range z.Systems {
		sd := api.ZOSSystemDoc{Serial: serial, State: "unusable", Detail: "not opened on this server"}
		for _, c := range s.storageDoc(serial).Connections {
			if c.ZOS == z.Name {
				sd.State, sd.Detail = c.State, c.Detail
			}
		}
		doc.Systems = append(doc.Systems, sd)
	}
	return doc
}
