package control

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/lockstep-io/lockstep/daemon/control/api"
)

// The scheduled tasks' methods (api doc: TaskList ... TaskRemove).

func (r reads) TaskList() (string, *dbus.Error) {
	list, err := r.s.backend.TaskList(r.s.ctx)
	return r.s.reply("TaskList", orEmpty(list), err)
}

func (r reads) TaskShow(name string) (string, *dbus.Error) {
	doc, err := r.s.backend.TaskShow(r.s.ctx, name)
	return r.s.reply("TaskShow", doc, err)
}

func (a admin) TaskCreate(sender dbus.Sender, spec string) (string, *dbus.Error) {
	if derr := a.refused(sender, "TaskCreate"); derr != nil {
		return "", derr
	}
	var sp api.TaskSpec
	var doc api.TaskDoc
	dec := json.NewDecoder(strings.NewReader(spec))
	dec.DisallowUnknownFields()
	err := dec.Decode(&sp)
	if err != nil {
		err = invalid("task spec", err)
	} else {
		err = sp.Validate()
	}
	if err == nil {
		doc, err = a.s.backend.TaskCreate(a.s.ctx, sp)
	}
	return a.done(sender, "TaskCreate", doc, err, "task", sp.Name, "schedule", sp.Schedule, "zone", sp.Zone,
		"steps", strings.Join(sp.Steps, "; "))
}

func (a admin) TaskEnable(sender dbus.Sender, name string, on bool) (string, *dbus.Error) {
	if derr := a.refused(sender, "TaskEnable"); derr != nil {
		return "", derr
	}
	doc, err := a.s.backend.TaskEnable(a.s.ctx, name, on)
	return a.done(sender, "TaskEnable", doc, err, "task", name, "on", on)
}

// maxTaskRunAt bounds TaskRun's time (microseconds since the epoch): a
// time.Time past year 9999 does not encode.
const maxTaskRunAt = 253402300799999999

func (a admin) TaskRun(sender dbus.Sender, name string, at uint64) (string, *dbus.Error) {
	if derr := a.refused(sender, "TaskRun"); derr != nil {
		return "", derr
	}
	var doc api.TaskDoc
	var err error
	var when time.Time
	if at > maxTaskRunAt {
		err = fmt.Errorf("%w: run time %d is past year 9999", api.ErrInvalid, at)
	} else if at != 0 {
		when = time.UnixMicro(int64(at)).UTC()
	}
	if err == nil {
		doc, err = a.s.backend.TaskRun(a.s.ctx, name, when)
	}
	return a.done(sender, "TaskRun", doc, err, "task", name, "at", at)
}

func (a admin) TaskRemove(sender dbus.Sender, name string) *dbus.Error {
	if derr := a.refused(sender, "TaskRemove"); derr != nil {
		return derr
	}
	return a.doneNoReply(sender, "TaskRemove", a.s.backend.TaskRemove(a.s.ctx, name), "task", name)
}
