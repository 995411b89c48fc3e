package daemon

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
)

// Task is a long-running part of the daemon.
type Task interface {
	Run(ctx context.Context) error
	// Ready is closed once the task serves.
	Ready() <-chan struct{}
	String() string
}

// RunTasks runs tasks until ctx ends or one fails, and calls ready once
// every task is ready. The first error cancels the others and is returned.
func RunTasks(ctx context.Context, tasks []Task, ready func()) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, t := range tasks {
		g.Go(func() error {
			if err := t.Run(ctx); err != nil {
				return fmt.Errorf("%s: %w", t, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		for _, t := range tasks {
			select {
			case <-t.Ready():
			case <-ctx.Done():
				return nil
			}
		}
		ready()
		return nil
	})
	return g.Wait()
}
