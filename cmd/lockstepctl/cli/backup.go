package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockstep-io/lockstep/daemon/control/client"
)

func (a *app) backupCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "backup",
		Short: "Create, list and restore backups of the daemon's state",
		Long: `A backup is a zip file in the state directory's backups/ folder
(/var/lib/lockstep/backups by default) holding the daemon's whole state
(storage systems, sessions, heartbeat switch) with a checksummed
manifest. Copy the files elsewhere to keep them; old ones are deleted
after a retention period, never the newest.`,
	})
	create := &cobra.Command{
		Use:     "create",
		Short:   "Write a backup of the current state",
		Long:    "Write a backup of the state as it is now, and print its name and size.",
		Example: "  lockstepctl backup create",
		Args:    cobra.NoArgs,
		RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error {
			b, err := c.BackupCreate(ctx)
			if err != nil {
				return err
			}
			return a.show(b, func(w io.Writer) { fmt.Fprintf(w, "backup %s created (%d bytes)\n", b.Name, b.Size) })
		}),
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the backups in the state directory",
		Long:    "List the backups: name, creation time, epoch, last journal index and size.",
		Example: "  lockstepctl backup list",
		Args:    cobra.NoArgs,
		RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error {
			list, err := c.BackupList(ctx)
			if err != nil {
				return err
			}
			return a.show(list, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tCREATED\tEPOCH\tLAST INDEX\tSIZE")
				for _, b := range list {
					fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\n", b.Name, b.Created.Format(time.RFC3339), b.Epoch, b.LastIndex, b.Size)
				}
			})
		}),
	}
	restore := &cobra.Command{
		Use:   "restore NAME",
		Short: "Replace the state with a backup's",
		Long: `Replace the daemon's state with the backup NAME (a file name from "backup
list", in the state directory's backups/ folder). The backup is verified
completely before anything changes. Refused on a server in an HA pair:
remove the standby first (ha remove-standby), restore, then set the
standby again.`,
		Example: "  lockstepctl backup restore lockstep-20250301T120000Z-42.zip",
		Args:    cobra.ExactArgs(1),
		RunE: a.leaf(func(ctx context.Context, c *client.Client, args []string) error {
			return c.BackupRestore(ctx, args[0])
		}),
	}
	cmd.AddCommand(create, list, restore)
	return cmd
}
