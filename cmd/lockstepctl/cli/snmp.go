package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/daemon/control/snmpstate"
)

// DefaultEnterpriseOID is the enterprise prefix lockstepd sends traps
// under unless snmp.enterprise_oid says otherwise (the placeholder arc
// of LOCKSTEP-MIB).
const DefaultEnterpriseOID = "1.3.6.1.4.1.61942"

// passPersistReadTimeout bounds one read of the daemon: snmpd waits for
// the answer while its manager waits for snmpd.
const passPersistReadTimeout = 3 * time.Second

func (a *app) snmpCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "snmp",
		Short: "Serve the pollable state to snmpd, and test the notifications",
		Long: `lockstepd sends its notifications (traps, informs) to the managers of [snmp]
in /etc/lockstep/lockstep.toml. Its state (the server, sessions, storage
systems and their connections, consistency groups) is polled through the
system's snmpd, which runs "lockstepctl snmp pass-persist" by one line of
snmpd.conf; see LOCKSTEP-MIB and docs/nms.md.`,
	})
	var prefix string
	var ttl time.Duration
	pp := &cobra.Command{
		Use:   "pass-persist",
		Short: "Answer snmpd's pass_persist requests for LOCKSTEP-MIB's state",
		Long: `Answer net-snmp's pass_persist protocol on standard input and output, for
the lockstepState subtree of LOCKSTEP-MIB: snmpd runs it once and keeps it,
by this line of /etc/snmp/snmpd.conf:

  pass_persist .1.3.6.1.4.1.61942.1.3 /usr/bin/lockstepctl snmp pass-persist

snmpd keeps the access control (communities, v3 users, views). The state
is read from lockstepd over the admin API (read methods only) and reused
for --cache, so that a walk costs one read; while lockstepd cannot be read,
every request is answered with no instance. A site whose snmp.enterprise_oid
is not the default gives it here, and in the OID of the line.`,
		Example: "  lockstepctl snmp pass-persist --enterprise-oid 1.3.6.1.4.1.61942",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a.ran = true
			root, err := snmpstate.ParseOID(prefix)
			if err != nil {
				return fmt.Errorf("%w: --enterprise-oid: %w", errUsage, err)
			}
			bus := a.busName()
			var conn *dbus.Conn
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			load := func(ctx context.Context) (snmpstate.Docs, error) {
				if conn == nil {
					if conn, err = client.Connect(bus); err != nil {
						conn = nil
						return snmpstate.Docs{}, err
					}
				}
				ctx, cancel := context.WithTimeout(ctx, passPersistReadTimeout)
				defer cancel()
				d, err := snmpstate.Read(ctx, client.New(conn))
				if err != nil && !conn.Connected() {
					conn.Close() // the bus went away: connect again at the next read
					conn = nil
				}
				return d, err
			}
			return snmpstate.Serve(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), snmpstate.ServeOptions{
				Root: append(root, 1), Load: load, TTL: ttl, Now: time.Now, Errors: cmd.ErrOrStderr()})
		},
	}
	pp.Flags().StringVar(&prefix, "enterprise-oid", DefaultEnterpriseOID, "snmp.enterprise_oid of lockstep.toml: LOCKSTEP-MIB is its arc 1")
	pp.Flags().DurationVar(&ttl, "cache", snmpstate.DefaultTTL, "how long one read of lockstepd answers requests")
	test := &cobra.Command{
		Use:   "test",
		Short: "Send a test notification to every configured manager",
		Long: `Send the snmpTest notification (LOCKSTEP-MIB lockstepSnmpTest, LS6201I) to
every manager of [snmp] in lockstep.toml, through the same queue and
sequence numbers as every notification, and report per manager:

  acknowledged  an inform the manager answered
  sent          a trap written to the network (nothing says it arrived:
                check the NMS)
  failed        the manager's retries were used up (it stays queued and
                is sent again, as every notification)
  pending       still queued or retried when the wait ended

It exits 1 unless every manager got it (or none is configured).`,
		Example: "  lockstepctl snmp test\n  lockstepctl --json snmp test",
		Args:    cobra.NoArgs,
		RunE: a.leaf(func(ctx context.Context, c *client.Client, _ []string) error {
			doc, err := c.SNMPTest(ctx)
			if err != nil {
				return err
			}
			missed := 0
			for _, m := range doc.Managers {
				if m.Outcome != "acknowledged" && m.Outcome != "sent" {
					missed++
				}
			}
			if err := a.show(doc, func(w io.Writer) {
				if len(doc.Managers) == 0 {
					fmt.Fprintln(w, "no snmp manager is configured ([[snmp.manager]] in lockstep.toml)")
					return
				}
				fmt.Fprintln(w, "MANAGER\tVERSION\tNOTIFICATION\tSEQ\tOUTCOME")
				for _, m := range doc.Managers {
					outcome := m.Outcome
					if m.Error != "" {
						outcome += ": " + m.Error
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", m.Address, m.Version, m.Notification, m.Seq, outcome)
				}
			}); err != nil {
				return err
			}
			if missed > 0 {
				return fmt.Errorf("%d of %d managers did not get the test notification", missed, len(doc.Managers))
			}
			return nil
		}),
	}
	cmd.AddCommand(pp, test)
	return cmd
}

// busName is --bus, else $LOCKSTEP_BUS, else the system bus.
func (a *app) busName() string {
	bus := strings.TrimSpace(a.bus)
	if bus == "" {
		bus = a.getenv(BusEnv)
	}
	if bus == "" {
		bus = "system"
	}
	return bus
}
