package wire

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/lockstep-io/lockstep/hal"
)

// hmcURIPrefix starts the URI SAN that names the HMC a certificate was
// issued to: urn:lockstep:hmc:NAME.
const hmcURIPrefix = "urn:lockstep:hmc:"

// HMCURI is the URI SAN naming HMC name in its certificates.
func HMCURI(name string) *url.URL {
	u, _ := url.Parse(hmcURIPrefix + url.PathEscape(name))
	return u
}

// HMCNames are the HMC names a certificate carries (its
// urn:lockstep:hmc:NAME URI SANs).
func HMCNames(cs tls.ConnectionState) []string {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	var names []string
	for _, u := range cs.PeerCertificates[0].URIs {
		if s, ok := strings.CutPrefix(u.String(), hmcURIPrefix); ok {
			if s, err := url.PathUnescape(s); err == nil && s != "" {
				names = append(names, s)
			}
		}
	}
	return names
}

// VerifyHMCIdentity says whether a TLS connection whose chain and host
// name were verified reaches an HMC, and which: with a pin, the
// certificate's SHA-256 must be pin; otherwise the certificate must name
// an HMC in a URI SAN urn:lockstep:hmc:NAME, and name when name is set.
// There is no common-name fallback: a certificate that names no HMC (a
// storage system's, say) never receives an HMC's password.
func VerifyHMCIdentity(cs tls.ConnectionState, name string, pin []byte) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: no certificate", ErrIdentity)
	}
	if len(pin) > 0 {
		return checkPin(cs.PeerCertificates[0], pin, "HMC "+name)
	}
	names := HMCNames(cs)
	switch {
	case len(names) == 0:
		return fmt.Errorf("%w: the certificate (CN %q) names no HMC (%sNAME)", ErrIdentity,
			cs.PeerCertificates[0].Subject.CommonName, hmcURIPrefix)
	case name != "" && !slices.Contains(names, name):
		return fmt.Errorf("%w: the certificate names HMC %s, not %s", ErrIdentity, strings.Join(names, ", "), name)
	}
	return nil
}

// verifyThenExchangeHMC is verifyThenExchange for a Hello to an HMC: the
// certificate must name an HMC (name, if set) before the Hello is written,
// and the HMC the HelloOK names must be one the certificate names.
func verifyThenExchangeHMC(tc *tls.Conn, br *bufio.Reader, body []byte, name string, pin []byte) (HelloOK, error) {
	cs := tc.ConnectionState()
	if err := VerifyHMCIdentity(cs, name, pin); err != nil {
		return HelloOK{}, err
	}
	ok, err := exchangeHellos(tc, br, body, "")
	if err != nil {
		return HelloOK{}, err
	}
	switch {
	case ok.HMC == "":
		return HelloOK{}, fmt.Errorf("%w: asked for an HMC, the endpoint is storage system %s", ErrUnknownSerial, ok.Serial)
	case name != "" && ok.HMC != name:
		return HelloOK{}, fmt.Errorf("%w: asked for HMC %s, the endpoint is HMC %s", ErrUnknownSerial, name, ok.HMC)
	case len(pin) == 0 && !slices.Contains(HMCNames(cs), ok.HMC):
		return HelloOK{}, fmt.Errorf("%w: the endpoint says it is HMC %s, its certificate names %s",
			ErrIdentity, ok.HMC, strings.Join(HMCNames(cs), ", "))
	}
	return ok, nil
}

// IssueHMC makes a server certificate signed by the CA for HMC name (its
// URI SAN, HMCURI) at hosts (each a DNS name or an IP address).
func (s *SelfSigned) IssueHMC(name string, hosts ...string) (tls.Certificate, error) {
	if name == "" || len(hosts) == 0 {
		return tls.Certificate{}, fmt.Errorf("wire: HMC certificate: a name and host names are required")
	}
	cert, _, _, err := s.issueFor(name, []*url.URL{HMCURI(name)}, hosts...)
	return cert, err
}

// HMC is the name of the HMC this connection reaches, or "" for a
// storage endpoint.
func (c *Client) HMC() string { return c.hmc }

// Fronts says whether the connection may carry commands for, and events
// of, serial: the HMC's attached systems (HelloOK), or a storage
// endpoint's own serial.
func (c *Client) Fronts(serial hal.Serial) bool {
	if c.hmc != "" {
		return c.attached[serial]
	}
	return serial == c.serial
}

// Attached asks the endpoint which storage systems it fronts and whether
// it reaches each now (OpAttached).
func (c *Client) Attached(ctx context.Context) ([]AttachedSystem, error) {
	r, err := c.queryTo(ctx, "", 0, OpAttached)
	return r.Attached, err
}

// To addresses the storage system serial behind this connection: through
// an HMC, one of its attached systems. Its methods are the Client's
// commands, carrying serial as each request's target.
func (c *Client) To(serial hal.Serial) *Target { return &Target{c: c, serial: serial} }

// Target is one storage system reached through a Client (see To).
type Target struct {
	c      *Client
	serial hal.Serial
}

func (t *Target) EstablishPaths(ctx context.Context, epoch hal.Epoch, paths []hal.PathSpec) error {
	return t.c.commandTo(ctx, t.serial, epoch, OpEstablishPaths, Args{Paths: paths})
}

func (t *Target) EstablishPairs(ctx context.Context, epoch hal.Epoch, pairs []hal.PairSpec) error {
	return t.c.commandTo(ctx, t.serial, epoch, OpEstablishPairs, Args{Pairs: pairs})
}

func (t *Target) Freeze(ctx context.Context, epoch hal.Epoch, pairs []hal.LSSPair) error {
	return t.c.commandTo(ctx, t.serial, epoch, OpFreeze, Args{LSSPairs: pairs})
}

func (t *Target) Thaw(ctx context.Context, epoch hal.Epoch, lsss []hal.LSS) error {
	return t.c.commandTo(ctx, t.serial, epoch, OpThaw, Args{LSSs: lsss})
}

func (t *Target) Suspend(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return t.c.commandTo(ctx, t.serial, epoch, OpSuspend, Args{VolumePairs: pairs})
}

func (t *Target) Recover(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return t.c.commandTo(ctx, t.serial, epoch, OpRecover, Args{VolumePairs: pairs})
}

func (t *Target) Failback(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return t.c.commandTo(ctx, t.serial, epoch, OpFailback, Args{VolumePairs: pairs})
}

func (t *Target) RemovePairs(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return t.c.commandTo(ctx, t.serial, epoch, OpRemovePairs, Args{VolumePairs: pairs})
}

func (t *Target) RemovePaths(ctx context.Context, epoch hal.Epoch, paths []hal.LSSPair) error {
	return t.c.commandTo(ctx, t.serial, epoch, OpRemovePaths, Args{LSSPairs: paths})
}

func (t *Target) EnableHeartbeat(ctx context.Context, epoch hal.Epoch, hb hal.HeartbeatSpec) error {
	return t.c.commandTo(ctx, t.serial, epoch, OpEnableHeartbeat, Args{Heartbeat: hb})
}

func (t *Target) Heartbeat(ctx context.Context, epoch hal.Epoch, session string) error {
	return t.c.commandTo(ctx, t.serial, epoch, OpHeartbeat, Args{Session: session})
}

func (t *Target) DisableHeartbeat(ctx context.Context, epoch hal.Epoch, session string) error {
	return t.c.commandTo(ctx, t.serial, epoch, OpDisableHeartbeat, Args{Session: session})
}

func (t *Target) QueryPairs(ctx context.Context, epoch hal.Epoch) ([]hal.PairStatus, error) {
	r, err := t.c.queryTo(ctx, t.serial, epoch, OpQueryPairs)
	return r.Pairs, err
}

func (t *Target) QueryPaths(ctx context.Context, epoch hal.Epoch) ([]hal.PathStatus, error) {
	r, err := t.c.queryTo(ctx, t.serial, epoch, OpQueryPaths)
	return r.Paths, err
}

func (t *Target) QueryLSSs(ctx context.Context, epoch hal.Epoch) ([]hal.LSSStatus, error) {
	r, err := t.c.queryTo(ctx, t.serial, epoch, OpQueryLSSs)
	return r.LSSs, err
}

// Router is implemented by the hal.StorageSystem an AcceptFunc returns
// for an endpoint that fronts several storage systems (an HMC). Serve
// runs each request on the system Route returns for its target, and
// answers OpAttached with Attached. The StorageSystem's own Events are
// the pushed events of every attached system; its other methods are not
// called.
type Router interface {
	// Route is the system a request for serial runs on. An error
	// wrapping hal.ErrUnreachable (not attached, private link down) is
	// answered with status unreachable: the command did not run.
	Route(serial hal.Serial) (hal.StorageSystem, error)
	// Attached lists the systems the endpoint fronts.
	Attached() []AttachedSystem
}

// route picks the storage system a request runs on: through a Router,
// or the connection's own system, which a storage endpoint's requests
// either leave implicit or name.
func route(sys hal.StorageSystem, own hal.Serial, target hal.Serial) (hal.StorageSystem, error) {
	if r, ok := sys.(Router); ok {
		return r.Route(target)
	}
	if target != "" && target != own {
		return nil, fmt.Errorf("%w: this endpoint serves storage system %s only, not %s", hal.ErrUnreachable, own, target)
	}
	return sys, nil
}

// attachedOf answers OpAttached.
func attachedOf(sys hal.StorageSystem, own hal.Serial) []AttachedSystem {
	if r, ok := sys.(Router); ok {
		return r.Attached()
	}
	if own == "" { // a z/OS host's discovery connection serves no system
		return nil
	}
	return []AttachedSystem{{Serial: own, LinkUp: true}}
}
