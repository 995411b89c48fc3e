package hapair

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// TLSFiles are one server's PEM files for the HA link.
type TLSFiles struct{ Cert, Key, CA string }

// WritePKI writes a CA (caName) and, for each name, a certificate it
// signs with both serverAuth and clientAuth (the HA link is mutual TLS),
// into dir. A second call with another caName makes certificates the
// first CA does not trust: the wrong-certificate test.
func WritePKI(dir, caName string, names ...string) (map[string]TLSFiles, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: caName},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	caFile := filepath.Join(dir, caName+"-ca.pem")
	if err := writePEM(caFile, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	out := map[string]TLSFiles{}
	for i, name := range names {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: []string{name},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return nil, err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		f := TLSFiles{Cert: filepath.Join(dir, caName+"-"+name+".pem"), Key: filepath.Join(dir, caName+"-"+name+"-key.pem"), CA: caFile}
		if err := writePEM(f.Cert, "CERTIFICATE", der); err != nil {
			return nil, err
		}
		if err := writePEM(f.Key, "PRIVATE KEY", keyDER); err != nil {
			return nil, err
		}
		out[name] = f
	}
	return out, nil
}

func writePEM(path, kind string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600)
}
