package control

import (
	"context"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/daemon/transitions"
	"github.com/lockstep-io/lockstep/hal"
)

// Tracked is b whose reads carry the last change and transition counts
// of t (LOCKSTEP-MIB's pollable columns): each read first observes the
// state it shows, so that a change no hook told t of is counted once,
// then fills the row in. The changes are b's own.
func Tracked(b Backend, t *transitions.Tracker) Backend {
	if t == nil {
		return b
	}
	return tracked{Backend: b, t: t}
}

type tracked struct {
	Backend
	t *transitions.Tracker
}

func (b tracked) Status(ctx context.Context) (api.StatusDoc, error) {
	doc, err := b.Backend.Status(ctx)
	doc.Started = b.t.Started()
	return doc, err
}

func (b tracked) session(doc api.SessionDoc) api.SessionDoc {
	b.t.Observe(transitions.Session, doc.Name,
		transitions.SessionState(string(doc.State), string(doc.Status), doc.Recoverable))
	doc.Transitions = b.t.Row(transitions.Session, doc.Name).Transitions
	return doc
}

func (b tracked) SessionList(ctx context.Context) ([]api.SessionDoc, error) {
	docs, err := b.Backend.SessionList(ctx)
	if err != nil {
		return docs, err
	}
	names := make([]string, 0, len(docs))
	for i := range docs {
		docs[i] = b.session(docs[i])
		names = append(names, docs[i].Name)
	}
	b.t.Retain(transitions.Session, names)
	return docs, nil
}

func (b tracked) SessionShow(ctx context.Context, name string) (api.SessionDoc, error) {
	doc, err := b.Backend.SessionShow(ctx, name)
	if err != nil {
		return doc, err
	}
	return b.session(doc), nil
}

func (b tracked) SessionCommand(ctx context.Context, name string, cmd session.Command) (api.SessionDoc, error) {
	doc, err := b.Backend.SessionCommand(ctx, name, cmd)
	if err != nil {
		return doc, err
	}
	return b.session(doc), nil
}

func (b tracked) storage(doc api.StorageDoc) api.StorageDoc {
	b.t.Observe(transitions.Storage, string(doc.Serial), transitions.StorageState(doc.Reachable))
	r := b.t.Row(transitions.Storage, string(doc.Serial))
	doc.LastChange, doc.Transitions = r.LastChange, r.Transitions
	return doc
}

func (b tracked) StorageList(ctx context.Context) ([]api.StorageDoc, error) {
	docs, err := b.Backend.StorageList(ctx)
	if err != nil {
		return docs, err
	}
	serials := make([]string, 0, len(docs))
	for i := range docs {
		docs[i] = b.storage(docs[i])
		serials = append(serials, string(docs[i].Serial))
	}
	b.t.Retain(transitions.Storage, serials)
	return docs, nil
}

func (b tracked) StorageShow(ctx context.Context, serial hal.Serial) (api.StorageDoc, error) {
	doc, err := b.Backend.StorageShow(ctx, serial)
	if err != nil {
		return doc, err
	}
	return b.storage(doc), nil
}

// HeartbeatShow fills the groups in. A server that does not act shows
// no group; their rows are kept, for the next acting period.
func (b tracked) HeartbeatShow(ctx context.Context) (api.HeartbeatDoc, error) {
	doc, err := b.Backend.HeartbeatShow(ctx)
	if err != nil {
		return doc, err
	}
	for i, g := range doc.Groups {
		b.t.Observe(transitions.Group, g.Name, g.Phase)
		r := b.t.Row(transitions.Group, g.Name)
		doc.Groups[i].LastChange, doc.Groups[i].Transitions, doc.Groups[i].LastFreeze = r.LastChange, r.Transitions, r.LastFreeze
	}
	return doc, nil
}

func (b tracked) HAStatus(ctx context.Context) (api.HADoc, error) {
	doc, err := b.Backend.HAStatus(ctx)
	if err != nil {
		return doc, err
	}
	b.t.Observe(transitions.Server, "", transitions.ServerState(doc.Role, doc.State))
	r := b.t.Row(transitions.Server, "")
	doc.LastChange, doc.Transitions = r.LastChange, r.Transitions
	return doc, nil
}
