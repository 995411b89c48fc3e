package link

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/lockstep-io/lockstep/internal/secretfile"
)

// Credentials authenticate this server to its peer and the peer to it:
// mutual TLS 1.3, both certificates signed by the CA the HA pair shares.
// A certificate serves both directions (each server listens and dials),
// so it needs both the serverAuth and the clientAuth extended key usage.
//
// At this level the peer is whoever holds a certificate the CA signed:
// host names are not checked (peers are addressed by IP or vsock CID).
// The HA state machine then checks that the certificate is the
// configured partner's (its name as a DNS or URI subject alternative
// name, or a pinned fingerprint) before the peer's Hello counts. Use a CA
// dedicated to the pair.
type Credentials struct {
	Cert tls.Certificate
	CA   *x509.CertPool
}

// LoadCredentials reads PEM files: this server's certificate chain, its
// private key, and the CA certificate(s) the peer's must chain to.
func LoadCredentials(certFile, keyFile, caFile string) (Credentials, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return Credentials{}, fmt.Errorf("link: certificate: %w", err)
	}
	// The key is a secret: refused if others may read it (docs/architecture.md, Trust).
	keyPEM, err := secretfile.Read(keyFile)
	if err != nil {
		return Credentials{}, fmt.Errorf("link: key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return Credentials{}, fmt.Errorf("link: certificate %s with key %s: %w", certFile, keyFile, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return Credentials{}, fmt.Errorf("link: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return Credentials{}, fmt.Errorf("link: CA file %s holds no PEM certificate", caFile)
	}
	return Credentials{Cert: cert, CA: pool}, nil
}

func (c Credentials) check() error {
	if len(c.Cert.Certificate) == 0 || c.CA == nil {
		return errors.New("link: mutual TLS needs a certificate and a CA")
	}
	return nil
}

// serverTLS: the accepting side requires a client certificate that
// chains to the CA (clientAuth usage).
func (c Credentials) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.CA,
	}
}

// clientTLS: the dialing side presents its certificate and verifies the
// server's against the CA (serverAuth usage), without a host name: the
// standard name check is replaced by VerifyConnection.
func (c Credentials) clientTLS() *tls.Config {
	roots := c.CA
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		MaxVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{c.Cert},
		InsecureSkipVerify: true, // VerifyConnection below does the chain check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("link: the peer sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots:         roots,
				Intermediates: inter,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				return fmt.Errorf("link: the peer's certificate: %w", err)
			}
			return nil
		},
	}
}
