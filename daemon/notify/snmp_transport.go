package notify

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/internal/secretfile"
)

// transport delivers one notification to one manager: it returns once a
// trap is written or an inform is acknowledged.
type transport interface {
	send(ctx context.Context, vbs []gosnmp.SnmpPDU) error
	close()
}

// credentials are a manager's secrets, read from the files the config
// names. They are never logged: no error or log line carries them.
type credentials struct {
	community string // v2c
	auth      string // v3 passphrases
	priv      string
}

// readCredentials reads a manager's key files, trimmed of surrounding
// white space (editors add a final newline).
func readCredentials(m config.Manager) (credentials, error) {
	read := func(key, path string, min, max int) (string, error) {
		b, err := secretfile.Read(path)
		if err != nil {
			return "", fmt.Errorf("%s: %w", key, err)
		}
		s := strings.TrimSpace(string(b))
		if len(s) < min || len(s) > max {
			// The length only: the content is a secret.
			return "", fmt.Errorf("%s %s: holds %d characters, want %d to %d", key, path, len(s), min, max)
		}
		return s, nil
	}
	var c credentials
	var err error
	switch m.Version {
	case config.V2c:
		// 127: gosnmp writes the community's length as one byte.
		c.community, err = read("community_file", m.CommunityFile, 1, 127)
	case config.V3:
		// USM passphrases have at least 8 characters (RFC 3414 11.2).
		c.auth, err = read("auth_key_file", m.AuthKeyFile, 8, 1024)
		if err == nil {
			c.priv, err = read("priv_key_file", m.PrivKeyFile, 8, 1024)
		}
	default:
		err = fmt.Errorf("version %q is not v2c or v3", m.Version)
	}
	return c, err
}

// gosnmpTransport sends through gosnmp over UDP. The socket is opened on
// first use and again after an error, so a manager whose name did not
// resolve at start is reached once it does.
type gosnmpTransport struct {
	m      config.Manager
	cred   credentials
	engine engine               // v3 traps: ours; informs discover the receiver's
	uptime func() time.Duration // since the sender started: snmpEngineTime of our traps
	g      *gosnmp.GoSNMP
	usm    *gosnmp.UsmSecurityParameters
	stop   func() bool
}

var authProtocols = map[config.AuthProtocol]gosnmp.SnmpV3AuthProtocol{
	config.SHA224: gosnmp.SHA224, config.SHA256: gosnmp.SHA256,
	config.SHA384: gosnmp.SHA384, config.SHA512: gosnmp.SHA512,
}

// AES-192 and AES-256 are the Blumenthal key extension, as net-snmp's
// "AES-192"/"AES-256".
var privProtocols = map[config.PrivProtocol]gosnmp.SnmpV3PrivProtocol{
	config.AES: gosnmp.AES, config.AES192: gosnmp.AES192, config.AES256: gosnmp.AES256,
}

func newGosnmpTransport(m config.Manager, cred credentials, eng engine, uptime func() time.Duration) (*gosnmpTransport, error) {
	if m.Version == config.V3 {
		if _, ok := authProtocols[m.AuthProtocol]; !ok {
			return nil, fmt.Errorf("auth_protocol %q is not supported", m.AuthProtocol)
		}
		if _, ok := privProtocols[m.PrivProtocol]; !ok {
			return nil, fmt.Errorf("priv_protocol %q is not supported", m.PrivProtocol)
		}
	}
	return &gosnmpTransport{m: m, cred: cred, engine: eng, uptime: uptime}, nil
}

func (t *gosnmpTransport) connect(ctx context.Context) error {
	m := t.m
	g := &gosnmp.GoSNMP{
		Target:    m.Address.Host,
		Port:      uint16(m.Address.Port),
		Transport: "udp",
		Context:   ctx,
		// One attempt per send: retries are ours, on the injected clock.
		Timeout: m.Timeout,
		Retries: 0,
	}
	if g.Timeout <= 0 {
		g.Timeout = config.DefaultTimeout
	}
	switch m.Version {
	case config.V2c:
		g.Version, g.Community = gosnmp.Version2c, t.cred.community
	case config.V3:
		t.usm = &gosnmp.UsmSecurityParameters{
			UserName:                 m.User,
			AuthenticationProtocol:   authProtocols[m.AuthProtocol],
			AuthenticationPassphrase: t.cred.auth,
			PrivacyProtocol:          privProtocols[m.PrivProtocol],
			PrivacyPassphrase:        t.cred.priv,
		}
		if m.Notification == config.Trap {
			// We are the authoritative engine of our traps. An inform's
			// receiver is the authoritative one: gosnmp discovers its
			// engine ID, boots and time with the first inform.
			t.usm.AuthoritativeEngineID = string(t.engine.id)
			t.usm.AuthoritativeEngineBoots = t.engine.boots
			if err := t.usm.InitSecurityKeys(); err != nil { // once, not per trap
				return fmt.Errorf("snmpv3 keys: %w", err)
			}
		}
		g.Version, g.SecurityModel, g.MsgFlags, g.SecurityParameters =
			gosnmp.Version3, gosnmp.UserSecurityModel, gosnmp.AuthPriv, t.usm
	}
	if err := g.Connect(); err != nil {
		return err
	}
	t.g = g
	// A cancelled Run must not wait for an acknowledgement until the
	// timeout: closing the socket ends the read at once. The socket, not
	// g, whose Close races with the read in progress.
	conn := g.Conn
	t.stop = context.AfterFunc(ctx, func() { conn.Close() })
	return nil
}

func (t *gosnmpTransport) send(ctx context.Context, vbs []gosnmp.SnmpPDU) error {
	if t.g == nil {
		if err := t.connect(ctx); err != nil {
			return err
		}
	}
	if t.m.Version == config.V3 && t.m.Notification == config.Trap {
		// snmpEngineTime has the same bound as snmpEngineBoots.
		t.usm.AuthoritativeEngineTime = uint32(min(t.uptime()/time.Second, maxEngineBoots))
	}
	res, err := t.g.SendTrap(gosnmp.SnmpTrap{Variables: vbs, IsInform: t.m.Notification == config.Inform})
	if err == nil && t.m.Notification == config.Inform && res != nil && res.PDUType == gosnmp.Report {
		// A report (unknown user, wrong key, ...) is no acknowledgement.
		err = fmt.Errorf("receiver answered with a report (%s)", reportName(res))
	}
	if err != nil {
		// A fresh socket and, for v3 informs, a fresh discovery: the
		// receiver may have restarted with another engine.
		t.close()
		return err
	}
	return nil
}

func (t *gosnmpTransport) close() {
	if t.g != nil {
		t.stop()
		t.g.Close()
		t.g = nil
	}
}

// reportName names the counter of a report PDU, such as usmStatsWrongDigests.
func reportName(p *gosnmp.SnmpPacket) string {
	names := map[string]string{
		".1.3.6.1.6.3.15.1.1.1.0": "usmStatsUnsupportedSecLevels",
		".1.3.6.1.6.3.15.1.1.2.0": "usmStatsNotInTimeWindows",
		".1.3.6.1.6.3.15.1.1.3.0": "usmStatsUnknownUserNames",
		".1.3.6.1.6.3.15.1.1.4.0": "usmStatsUnknownEngineIDs",
		".1.3.6.1.6.3.15.1.1.5.0": "usmStatsWrongDigests",
		".1.3.6.1.6.3.15.1.1.6.0": "usmStatsDecryptionErrors",
	}
	if len(p.Variables) == 0 {
		return "empty"
	}
	if n, ok := names[p.Variables[0].Name]; ok {
		return n
	}
	return p.Variables[0].Name
}

// managerAddr is how logs and stats name a manager: never with secrets.
func managerAddr(m config.Manager) string {
	return "udp://" + net.JoinHostPort(m.Address.Host, strconv.Itoa(int(m.Address.Port)))
}
