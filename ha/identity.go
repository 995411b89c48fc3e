package ha

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Fingerprint is the SHA-256 of a certificate (its DER encoding), the
// form `openssl x509 -fingerprint -sha256` prints. The zero value is no
// fingerprint.
type Fingerprint [sha256.Size]byte

// IsZero reports no fingerprint.
func (f Fingerprint) IsZero() bool { return f == Fingerprint{} }

// String is the lower-case hex form, without separators.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// ErrFingerprint: a fingerprint that is not 32 bytes of hex.
var ErrFingerprint = errors.New("ha: bad SHA-256 fingerprint")

// ParseFingerprint reads a SHA-256 fingerprint: 64 hex digits, in either
// case, optionally in pairs separated by colons (AB:CD:...), optionally
// prefixed "sha256:" or "SHA256 Fingerprint=".
func ParseFingerprint(s string) (Fingerprint, error) {
	t := strings.TrimSpace(s)
	for _, p := range []string{"SHA256 Fingerprint=", "sha256 Fingerprint=", "sha256:", "SHA256:"} {
		t = strings.TrimPrefix(t, p)
	}
	t = strings.ReplaceAll(t, ":", "")
	var f Fingerprint
	if len(t) != 2*len(f) {
		return Fingerprint{}, fmt.Errorf("%w %q: want 64 hex digits (pairs may be separated by colons)", ErrFingerprint, s)
	}
	if _, err := hex.Decode(f[:], []byte(t)); err != nil {
		return Fingerprint{}, fmt.Errorf("%w %q: %w", ErrFingerprint, s, err)
	}
	if f.IsZero() {
		return Fingerprint{}, fmt.Errorf("%w %q: all zero", ErrFingerprint, s)
	}
	return f, nil
}

// CertIdentity is what the peer's certificate, verified by the link's
// mutual TLS, says about it: unlike the Hello, it cannot be made up by
// any holder of a certificate of the CA.
type CertIdentity struct {
	// DNSNames and URIs are the certificate's subject alternative names.
	DNSNames []string
	URIs     []string
	// Fingerprint is the SHA-256 of the certificate.
	Fingerprint Fingerprint
}

// URIPrefix is the URI subject alternative name that carries a server
// name: urn:lockstep:server:NAME.
const URIPrefix = "urn:lockstep:server:"

// Names reports whether the certificate carries name: a DNS name equal to
// it (DNS names are case-insensitive), or a URI equal to it or to
// urn:lockstep:server:NAME.
func (c CertIdentity) Names(name string) bool {
	if name == "" {
		return false
	}
	if slices.ContainsFunc(c.DNSNames, func(d string) bool { return strings.EqualFold(d, name) }) {
		return true
	}
	return slices.ContainsFunc(c.URIs, func(u string) bool { return u == name || u == URIPrefix+name })
}

func (c CertIdentity) String() string {
	names := append(slices.Clone(c.DNSNames), c.URIs...)
	if len(names) == 0 {
		return "certificate without names, SHA-256 " + c.Fingerprint.String()
	}
	return "certificate for " + strings.Join(names, ", ") + ", SHA-256 " + c.Fingerprint.String()
}

// ValidName reports a usable partner name: 1 to 255 bytes (what a Hello
// carries) of printable ASCII without spaces.
func ValidName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("%w: a server name has 1 to 255 characters, got %d", ErrPartnerIdentity, len(name))
	}
	for _, r := range name {
		if r <= ' ' || r > '~' {
			return fmt.Errorf("%w: server name %q: only printable ASCII without spaces", ErrPartnerIdentity, name)
		}
	}
	return nil
}

// expected is the partner's name as this server knows it: the
// relationship's (given with ha set-standby --name, or learned at the
// first authenticated contact), else the configured partner_name.
func expected(s State, cfg Config) string {
	if s.Peer.Name != "" {
		return s.Peer.Name
	}
	return cfg.PartnerName
}

// authenticate checks the peer behind a link against the configured
// partner, before its Hello may change anything (docs/architecture.md, Trust): with a
// configured fingerprint, the peer's certificate must be that one;
// otherwise the certificate must carry the partner's name. In both cases
// a Hello that names another server than the expected one is refused.
func authenticate(s State, p PeerInfo, cfg Config) error {
	name := expected(s, cfg)
	pin := cfg.PartnerFingerprint
	switch {
	case name == "" && pin.IsZero():
		return fmt.Errorf("%w: %s (%s) is refused: this server has no partner configured "+
			"(ha set-standby/set-as-standby ADDR --name NAME, or [ha] partner_name / partner_fingerprint)",
			ErrNotPartner, quoted(p.Name), p.Cert)
	case !pin.IsZero() && p.Cert.Fingerprint != pin:
		return fmt.Errorf("%w: %s presents a %s, not the pinned partner_fingerprint %s",
			ErrNotPartner, quoted(p.Name), p.Cert, pin)
	case pin.IsZero() && !p.Cert.Names(name):
		return fmt.Errorf("%w: %s presents a %s, which does not name the partner %q (a DNS or URI subject alternative name)",
			ErrNotPartner, quoted(p.Name), p.Cert, name)
	case name != "" && p.Name != name:
		return fmt.Errorf("%w: the partner %q calls itself %s in its hello", ErrNotPartner, name, quoted(p.Name))
	}
	return nil
}

func quoted(name string) string {
	if name == "" {
		return "a peer without a name"
	}
	return fmt.Sprintf("%q", name)
}
