package wire

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// ServerTLSConfig is the TLS configuration of a storage endpoint: TLS 1.3
// only (no downgrade to older versions and their cipher suites), serving
// cert.
func ServerTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
	}
}

// ClientTLSConfig is the TLS configuration of a manager connecting to a
// storage endpoint: TLS 1.3 only, the server's certificate verified
// against roots for serverName (a DNS name or an IP address).
func ClientTLSConfig(roots *x509.CertPool, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		RootCAs:    roots,
		ServerName: serverName,
	}
}

// serialURIPrefix starts the URI SAN that names the storage system a
// certificate was issued to: urn:lockstep:serial:SERIAL.
const serialURIPrefix = "urn:lockstep:serial:"

// SerialURI is the URI SAN naming storage system serial in its
// certificates.
func SerialURI(serial hal.Serial) *url.URL {
	u, _ := url.Parse(serialURIPrefix + url.PathEscape(string(serial)))
	return u
}

// Fingerprint is the SHA-256 of a certificate's DER encoding: the pin of
// a storage system whose certificate does not name its serial.
func Fingerprint(der []byte) [sha256.Size]byte { return sha256.Sum256(der) }

// ParseFingerprint reads a SHA-256 fingerprint written as 64 hex digits,
// with or without colons between the bytes (as openssl x509 -fingerprint
// -sha256 prints it).
func ParseFingerprint(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("wire: %q is not a SHA-256 fingerprint (64 hex digits, colons allowed)", s)
	}
	return b, nil
}

// VerifyIdentity says whether a TLS connection whose chain and host name
// were verified (ClientTLSConfig) reaches storage system serial: its
// certificate's SHA-256 is pin when a pin is set; otherwise the
// certificate names serial in a URI SAN urn:lockstep:serial:SERIAL, or,
// when it has no urn:lockstep: URI at all, in its common name. A CA that signs
// certificates for many storage systems does not let one of them stand in
// for another, and the credentials of one are never sent to another.
func VerifyIdentity(cs tls.ConnectionState, serial hal.Serial, pin []byte) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: no certificate", ErrIdentity)
	}
	leaf := cs.PeerCertificates[0]
	if len(pin) > 0 {
		if fp := Fingerprint(leaf.Raw); !bytes.Equal(fp[:], pin) {
			return fmt.Errorf("%w: certificate SHA-256 %x is not the one pinned for %s", ErrIdentity, fp, serial)
		}
		return nil
	}
	if serial == "" {
		return fmt.Errorf("%w: no serial to check the certificate against, and no pin", ErrIdentity)
	}
	var named []string
	lockstepURI := false // a certificate naming anything of ours names it by URI, never by CN
	for _, u := range leaf.URIs {
		lockstepURI = lockstepURI || strings.HasPrefix(u.String(), "urn:lockstep:")
		if s, ok := strings.CutPrefix(u.String(), serialURIPrefix); ok {
			if s, err := url.PathUnescape(s); err == nil {
				named = append(named, s)
				if s == string(serial) {
					return nil
				}
			}
		}
	}
	if len(named) > 0 {
		return fmt.Errorf("%w: the certificate names %s, not %s", ErrIdentity, strings.Join(named, ", "), serial)
	}
	if leaf.Subject.CommonName == string(serial) && !lockstepURI {
		return nil
	}
	return fmt.Errorf("%w: the certificate (CN %q) does not name %s", ErrIdentity, leaf.Subject.CommonName, serial)
}

// SelfSigned is an in-memory certificate authority and one server
// certificate it signed, for a lab with no configured certificates and for
// tests. Managers trust CAPEM (or Pool); the endpoints serve Server.
type SelfSigned struct {
	CA      *x509.Certificate
	CAPEM   []byte         // the CA certificate, PEM, for the managers' trust store
	Pool    *x509.CertPool // a pool holding only CA
	Server  tls.Certificate
	CertPEM []byte // the server certificate, PEM
	KeyPEM  []byte // the server's private key, PKCS #8 PEM

	caKey               *ecdsa.PrivateKey
	notBefore, notAfter time.Time // validity of the certificates Issue makes
}

// NewSelfSigned makes an ECDSA P-256 CA and a server certificate for
// hosts (each a DNS name or an IP address), valid from a minute before now
// (to forgive clock skew between lab and manager) for validFor. now must be
// wall-clock time: TLS peers check validity against their real clocks.
func NewSelfSigned(now time.Time, validFor time.Duration, hosts ...string) (*SelfSigned, error) {
	if len(hosts) == 0 {
		return nil, fmt.Errorf("wire: self-signed certificate: no host names")
	}
	notBefore, notAfter := now.Add(-time.Minute), now.Add(validFor)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("wire: self-signed CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"lockstep lab"}, CommonName: "lockstep lab CA"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // it signs leaf certificates only
	}
	if caTmpl.SerialNumber, err = randomSerial(); err != nil {
		return nil, err
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("wire: self-signed CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("wire: self-signed CA: %w", err)
	}

	s := &SelfSigned{
		CA:        ca,
		caKey:     caKey,
		notBefore: notBefore,
		notAfter:  notAfter,
		CAPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Pool:      x509.NewCertPool(),
	}
	s.Pool.AddCert(ca)
	if s.Server, s.CertPEM, s.KeyPEM, err = s.issue("", hosts...); err != nil {
		return nil, err
	}
	return s, nil
}

// Issue makes another server certificate signed by the CA, for storage
// system serial (its URI SAN, SerialURI) at hosts (each a DNS name or an
// IP address; at least one): the lab gives every cluster endpoint its
// own.
func (s *SelfSigned) Issue(serial hal.Serial, hosts ...string) (tls.Certificate, error) {
	if len(hosts) == 0 {
		return tls.Certificate{}, fmt.Errorf("wire: certificate for %s: no host names", serial)
	}
	cert, _, _, err := s.issue(serial, hosts...)
	return cert, err
}

func (s *SelfSigned) issue(serial hal.Serial, hosts ...string) (cert tls.Certificate, certPEM, keyPEM []byte, err error) {
	if serial == "" {
		return s.issueFor(hosts[0], nil, hosts...)
	}
	return s.issueFor(string(serial), []*url.URL{SerialURI(serial)}, hosts...)
}

// issueFor makes a server certificate with common name cn and URI SANs
// uris, for hosts.
func (s *SelfSigned) issueFor(cn string, uris []*url.URL, hosts ...string) (cert tls.Certificate, certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return cert, nil, nil, fmt.Errorf("wire: self-signed server key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"lockstep lab"}, CommonName: cn},
		NotBefore:   s.notBefore,
		NotAfter:    s.notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		URIs:        uris,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if tmpl.SerialNumber, err = randomSerial(); err != nil {
		return cert, nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.CA, &key.PublicKey, s.caKey)
	if err != nil {
		return cert, nil, nil, fmt.Errorf("wire: self-signed server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return cert, nil, nil, fmt.Errorf("wire: self-signed server key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if cert, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return cert, nil, nil, fmt.Errorf("wire: self-signed key pair: %w", err)
	}
	return cert, certPEM, keyPEM, nil
}

// randomSerial is a 128-bit random certificate serial number, as RFC 5280
// asks for unpredictable serials.
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("wire: certificate serial: %w", err)
	}
	return n, nil
}
