package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
)

// TaskList is lockstepctl task list.
func (c *Client) TaskList(ctx context.Context) ([]api.TaskDoc, error) {
	return get[[]api.TaskDoc](ctx, c, api.Interface, "TaskList")
}

// TaskShow is lockstepctl task show NAME.
func (c *Client) TaskShow(ctx context.Context, name string) (api.TaskDoc, error) {
	return get[api.TaskDoc](ctx, c, api.Interface, "TaskShow", name)
}

// TaskCreate is lockstepctl task create.
func (c *Client) TaskCreate(ctx context.Context, spec api.TaskSpec) (api.TaskDoc, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return api.TaskDoc{}, fmt.Errorf("client: encode task spec: %w", err)
	}
	return get[api.TaskDoc](ctx, c, api.AdminInterface, "TaskCreate", string(b))
}

// TaskEnable is lockstepctl task enable NAME (on) and task disable NAME.
func (c *Client) TaskEnable(ctx context.Context, name string, on bool) (api.TaskDoc, error) {
	return get[api.TaskDoc](ctx, c, api.AdminInterface, "TaskEnable", name, on)
}

// TaskRun is lockstepctl task run NAME [--at TIME]: the zero time runs
// it now.
func (c *Client) TaskRun(ctx context.Context, name string, at time.Time) (api.TaskDoc, error) {
	var us uint64
	if !at.IsZero() {
		if at.UnixMicro() <= 0 {
			return api.TaskDoc{}, fmt.Errorf("%w: run time %s is before 1970", api.ErrInvalid, at)
		}
		us = uint64(at.UnixMicro())
	}
	return get[api.TaskDoc](ctx, c, api.AdminInterface, "TaskRun", name, us)
}

// TaskRemove is lockstepctl task remove NAME.
func (c *Client) TaskRemove(ctx context.Context, name string) error {
	return c.call(ctx, api.AdminInterface, "TaskRemove", nil, name)
}
