package wire

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
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

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("wire: self-signed server key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"lockstep lab"}, CommonName: hosts[0]},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if tmpl.SerialNumber, err = randomSerial(); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("wire: self-signed server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("wire: self-signed server key: %w", err)
	}

	s := &SelfSigned{
		CA:      ca,
		CAPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Pool:    x509.NewCertPool(),
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	s.Pool.AddCert(ca)
	if s.Server, err = tls.X509KeyPair(s.CertPEM, s.KeyPEM); err != nil {
		return nil, fmt.Errorf("wire: self-signed key pair: %w", err)
	}
	return s, nil
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
