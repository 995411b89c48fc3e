package link

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/internal/secretfile"
)

// TestLoadCredentialsRefusesAnExposedKey: docs/architecture.md (Trust), key files
// readable by others are refused, naming the file and its mode.
func TestLoadCredentialsRefusesAnExposedKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "a"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, kind string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: b}), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert := write("cert.pem", "CERTIFICATE", der, 0o644) // certificates are public
	ca := write("ca.pem", "CERTIFICATE", der, 0o644)
	good := write("key.pem", "PRIVATE KEY", keyDER, 0o600)
	open := write("open-key.pem", "PRIVATE KEY", keyDER, 0o644)
	if _, err := LoadCredentials(cert, good, ca); err != nil {
		t.Fatalf("a 0600 key: %v", err)
	}
	_, err = LoadCredentials(cert, open, ca)
	if !errors.Is(err, secretfile.ErrExposed) || !strings.Contains(err.Error(), open) || !strings.Contains(err.Error(), "mode 0644") {
		t.Fatalf("a 0644 key: %v, want secretfile.ErrExposed naming the file and its mode", err)
	}
}
