package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/ha"
)

// The file as decoded: every leaf is a rawValue, so that a value of the
// wrong type becomes a problem with its key and line instead of ending
// the decoding, and every problem can be reported.
type rawFile struct {
	Server    rawServer    `toml:"server"`
	Heartbeat rawHeartbeat `toml:"heartbeat"`
	HA        rawHA        `toml:"ha"`
	Control   rawControl   `toml:"control"`
	Log       rawLog       `toml:"log"`
	Syslog    rawSyslog    `toml:"syslog"`
	SNMP      rawSNMP      `toml:"snmp"`
	Storage   rawStorage   `toml:"storage"`
}

type rawServer struct {
	Name     rawValue `toml:"name"`
	StateDir rawValue `toml:"state_dir"`
	Edition  rawValue `toml:"edition"`
	Sysplex  rawValue `toml:"sysplex"`
}

type rawHeartbeat struct {
	Interval        rawValue `toml:"interval"`
	DetectionWindow rawValue `toml:"detection_window"`
	RequestTimeout  rawValue `toml:"request_timeout"`
	PollInterval    rawValue `toml:"poll_interval"`
	RetryInterval   rawValue `toml:"retry_interval"`
}

type rawHA struct {
	Listen            rawValue `toml:"listen"`
	Advertise         rawValue `toml:"advertise"`
	CertFile          rawValue `toml:"cert_file"`
	KeyFile           rawValue `toml:"key_file"`
	CAFile            rawValue `toml:"ca_file"`
	ReconnectInterval rawValue `toml:"reconnect_interval"`
	ReconnectAttempts rawValue `toml:"reconnect_attempts"`
	SourcePorts       rawValue `toml:"source_ports"`
	PartnerName       rawValue `toml:"partner_name"`
	PartnerFP         rawValue `toml:"partner_fingerprint"`
}

type rawControl struct {
	Bus        rawValue `toml:"bus"`
	AdminGroup rawValue `toml:"admin_group"`
}

type rawLog struct {
	Level  rawValue `toml:"level"`
	Format rawValue `toml:"format"`
}

type rawSyslog struct {
	Target  rawValue `toml:"target"`
	AppName rawValue `toml:"app_name"`
}

type rawSNMP struct {
	EnterpriseOID rawValue     `toml:"enterprise_oid"`
	TrapListen    rawValue     `toml:"trap_listen"`
	EngineIDFile  rawValue     `toml:"engine_id_file"`
	Managers      []rawManager `toml:"manager"`
	rawTrapAuth
}

type rawManager struct {
	Address       rawValue `toml:"address"`
	Version       rawValue `toml:"version"`
	Notification  rawValue `toml:"notification"`
	CommunityFile rawValue `toml:"community_file"`
	User          rawValue `toml:"user"`
	AuthProtocol  rawValue `toml:"auth_protocol"`
	PrivProtocol  rawValue `toml:"priv_protocol"`
	AuthKeyFile   rawValue `toml:"auth_key_file"`
	PrivKeyFile   rawValue `toml:"priv_key_file"`
	Retries       rawValue `toml:"retries"`
	Timeout       rawValue `toml:"timeout"`
	Queue         rawValue `toml:"queue"`
}

// rawValue holds any TOML value; validation decides what it may be.
type rawValue struct {
	v   any
	set bool
}

func (r *rawValue) UnmarshalTOML(v any) error {
	r.v, r.set = v, true
	return nil
}

// Load reads and validates the config file at path. The error is a
// Problems naming path in every line, or (for an unreadable file) a
// Problems of one ErrFile problem.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: err.Error(), Kind: ErrFile, Cause: err}}
	}
	cfg, err := Parse(string(b))
	if ps, ok := err.(Problems); ok {
		return nil, ps.withFile(path)
	}
	if cfg != nil {
		cfg.Warnings.withFile(path)
	}
	return cfg, err
}

// Parse decodes and validates a config file's text. Every problem found
// is reported: the error is a Problems, sorted by line.
func Parse(text string) (*Config, error) {
	var raw rawFile
	md, err := toml.Decode(text, &raw)
	if err != nil {
		return nil, Problems{decodeProblem(err, text)}
	}
	keys := scanKeys(text)
	c := &checker{lines: linesOf(keys)}
	c.keys(md, keys)
	cfg := c.config(&raw)
	if len(c.problems) > 0 {
		c.problems.sortByLine()
		return nil, c.problems
	}
	c.warnings.sortByLine()
	cfg.Warnings = c.warnings
	return cfg, nil
}

// decodeProblem turns an error of toml.Decode on text into a problem.
func decodeProblem(err error, text string) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.Usage != "" {
			msg += " (" + strings.TrimSpace(strings.Join(strings.Fields(pe.Usage), " ")) + ")"
		}
		p := Problem{Line: pe.Position.Line, Msg: msg, Kind: ErrSyntax, Cause: err}
		// A value the decoder cannot hold (an integer beyond int64, a
		// float beyond float64) is a bad value of a key that the parser
		// names; name it too, with its array index, which LastKey lacks.
		// LastKey is trusted only when that key is written on the error's
		// line: after a syntax error it may be an earlier key or the table.
		if pe.LastKey != "" {
			for _, k := range scanKeys(text) {
				if k.line == p.Line && k.key.String() == pe.LastKey {
					p.Key = k.path
					break
				}
			}
		}
		if p.Key != "" && strings.Contains(pe.Message, "is out of range for") {
			p.Kind = ErrValue
		}
		return p
	}
	// Other errors read "toml: line N (last key "k"): message".
	p := Problem{Msg: err.Error(), Kind: ErrSyntax, Cause: err}
	msg, _ := strings.CutPrefix(err.Error(), "toml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		n, after, _ := strings.Cut(rest, " ")
		if l, err := strconv.Atoi(n); err == nil {
			p.Line, msg = l, after
		}
	}
	if rest, ok := strings.CutPrefix(msg, "(last key "); ok {
		if k, after, ok := strings.Cut(rest, "): "); ok {
			if uq, err := strconv.Unquote(k); err == nil {
				k = uq
			}
			p.Key, msg = k, after
		}
	}
	// "type mismatch for config.rawSNMP: expected table but found int64"
	if _, rest, ok := strings.Cut(msg, "expected "); ok {
		if want, found, ok := strings.Cut(rest, " but found "); ok {
			msg = fmt.Sprintf("must be a %s, not %s", want, tomlTypeName(found))
		}
	}
	// "incompatible types: TOML value has type map[string]any; destination has type slice"
	if rest, ok := strings.CutPrefix(msg, "incompatible types: TOML value has type "); ok {
		if found, want, ok := strings.Cut(rest, "; destination has type "); ok {
			if want == "slice" {
				want = fmt.Sprintf("an array of tables ([[%s]])", p.Key)
			}
			msg = fmt.Sprintf("must be %s, not %s", want, tomlTypeName(found))
		}
	}
	p.Msg = msg
	return p
}

func tomlTypeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]map"):
		return "an array of tables"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map"):
		return "a table"
	case goType == "int64":
		return "an integer"
	case goType == "float64":
		return "a float"
	case goType == "bool":
		return "a boolean"
	case goType == "string":
		return "a string"
	}
	return goType
}

type checker struct {
	lines    map[string]int
	problems Problems
	warnings Problems
}

// lineOf is the line of key, or of its closest parent that is written in
// the file.
func (c *checker) lineOf(key string) int {
	for p := key; p != ""; p = parentPath(p) {
		if l, ok := c.lines[p]; ok {
			return l
		}
	}
	return 0
}

func (c *checker) add(kind error, cause error, key, format string, args ...any) {
	c.problems = append(c.problems, Problem{Line: c.lineOf(key), Key: key, Msg: fmt.Sprintf(format, args...), Kind: kind, Cause: cause})
}

func (c *checker) warn(kind error, key, format string, args ...any) {
	c.warnings = append(c.warnings, Problem{Line: c.lineOf(key), Key: key, Msg: fmt.Sprintf(format, args...), Kind: kind})
}

// keys reports unknown keys and keys not in lower case (BurntSushi/toml
// matches keys to fields case-insensitively; ours are all lower case).
func (c *checker) keys(md toml.MetaData, keys []keyLine) {
	undecoded := map[string]bool{}
	for _, k := range md.Undecoded() {
		undecoded[k.String()] = true
	}
	reported := map[string]bool{} // indexed paths
	under := func(p string) bool {
		for ; p != ""; p = parentPath(p) {
			if reported[p] {
				return true
			}
		}
		return false
	}
	found := map[string]bool{}
	for _, k := range keys {
		s := k.key.String()
		if undecoded[s] {
			found[s] = true
			if !under(k.path) {
				reported[k.path] = true
				c.problems = append(c.problems, Problem{Line: k.line, Key: k.path, Msg: "unknown key", Kind: ErrUnknownKey})
			}
			continue
		}
		for i, part := range k.key {
			lower := strings.ToLower(part)
			if part == lower {
				continue
			}
			id := k.path
			if i < len(k.key)-1 {
				id = toml.Key(k.key[:i+1]).String()
			}
			if !reported[id] {
				reported[id] = true
				c.problems = append(c.problems, Problem{Line: k.line, Key: k.path, Kind: ErrKeyCase,
					Msg: fmt.Sprintf("keys are lower case: write %q, not %q", lower, part)})
			}
			break
		}
	}
	// Keys the scanner missed (it should not): still reported, without a line.
	for _, k := range md.Undecoded() {
		s := k.String()
		if !found[s] && !under(s) {
			reported[s] = true
			c.problems = append(c.problems, Problem{Key: s, Msg: "unknown key", Kind: ErrUnknownKey})
		}
	}
}

// describe names a TOML value for a message.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case int64:
		return fmt.Sprintf("the integer %d", x)
	case float64:
		return fmt.Sprintf("the float %v", x)
	case bool:
		return fmt.Sprintf("the boolean %v", x)
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	}
	return "a date or time"
}

// str returns the string value of key; ok is false when the key is not
// set or not a string (a problem then).
func (c *checker) str(key string, v rawValue) (string, bool) {
	if !v.set {
		return "", false
	}
	s, isStr := v.v.(string)
	if !isStr {
		c.add(ErrType, nil, key, "must be a string, not %s", describe(v.v))
		return "", false
	}
	return s, true
}

// dur returns the duration at key, or def when unset or bad. Durations
// are strings with a unit; they must be positive.
func (c *checker) dur(key string, v rawValue, def time.Duration) (time.Duration, bool) {
	if !v.set {
		return def, true
	}
	switch x := v.v.(type) {
	case string:
		d, err := time.ParseDuration(x)
		if err != nil {
			c.add(ErrDuration, err, key, "%q is not a duration: write a number with a unit, such as \"1s\", \"500ms\" or \"1m\"", x)
			return def, false
		}
		if d <= 0 {
			c.add(ErrDuration, nil, key, "%q: must be more than zero", x)
			return def, false
		}
		return d, true
	case int64, float64:
		c.add(ErrDuration, nil, key, "the bare number %v is not a duration: write it as a string with a unit, such as \"%vs\" or \"%vms\"", x, x, x)
		return def, false
	}
	c.add(ErrType, nil, key, "must be a duration string such as \"1s\", not %s", describe(v.v))
	return def, false
}

// integer returns the integer at key in [lo, hi], or def.
func (c *checker) integer(key string, v rawValue, def, lo, hi int) int {
	if !v.set {
		return def
	}
	n, ok := v.v.(int64)
	if !ok {
		c.add(ErrType, nil, key, "must be an integer, not %s", describe(v.v))
		return def
	}
	if n < int64(lo) || n > int64(hi) {
		c.add(ErrValue, nil, key, "%d is out of range: %d to %d", n, lo, hi)
		return def
	}
	return int(n)
}

// choice returns the value at key if it is one of allowed, else def.
func (c *checker) choice(key string, v rawValue, def string, allowed ...string) string {
	s, ok := c.str(key, v)
	if !ok {
		return def
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	c.add(ErrValue, nil, key, "%q is not %s", s, orList(allowed))
	return def
}

// path returns the absolute, cleaned file path at key, or def.
func (c *checker) path(key string, v rawValue, def string) string {
	s, ok := c.str(key, v)
	if !ok {
		return def
	}
	if !filepath.IsAbs(s) {
		c.add(ErrValue, nil, key, "%q: must be an absolute path", s)
		return def
	}
	return filepath.Clean(s)
}

// addr returns the address at key, or nil when unset or bad.
func (c *checker) addr(key string, v rawValue, schemes ...string) *Addr {
	s, ok := c.str(key, v)
	if !ok {
		return nil
	}
	a, err := ParseAddr(s, schemes...)
	if err != nil {
		c.add(ErrAddress, nil, key, "%v", err)
		return nil
	}
	return &a
}

func (c *checker) config(raw *rawFile) *Config {
	cfg := Default()
	c.server(raw.Server, cfg)
	c.heartbeat(raw.Heartbeat, cfg)
	c.ha(raw.HA, cfg)
	c.control(raw.Control, cfg)
	c.log(raw.Log, cfg)
	c.syslog(raw.Syslog, cfg)
	c.snmp(raw.SNMP, cfg)
	c.trapAuth(raw.SNMP.rawTrapAuth, cfg)
	c.storage(raw.Storage, cfg)
	return cfg
}

func (c *checker) server(r rawServer, cfg *Config) {
	if name, ok := c.str("server.name", r.Name); ok {
		if why := checkServerName(name); why != "" {
			c.add(ErrValue, nil, "server.name", "%q: %s", name, why)
		}
		cfg.Server.Name = name
	} else if !r.Name.set {
		if why := checkServerName(cfg.Server.Name); why != "" {
			c.add(ErrRequired, nil, "server.name", "not set, and the host name %q cannot be used (%s): set it", cfg.Server.Name, why)
		}
	}
	cfg.Server.StateDir = c.path("server.state_dir", r.StateDir, DefaultStateDir)
	if cfg.Server.StateDir == "/" {
		c.add(ErrValue, nil, "server.state_dir", "must not be /")
	}
	cfg.Server.Edition = Edition(c.choice("server.edition", r.Edition, string(EditionFull), string(EditionFull), string(EditionBasic)))
	if plex, ok := c.str("server.sysplex", r.Sysplex); ok {
		if why := CheckSysplex(plex); why != "" {
			c.add(ErrValue, nil, "server.sysplex", "%q: %s", plex, why)
		}
		cfg.Server.Sysplex = plex
	}
}

// CheckSysplex says what is wrong with a sysplex name ("" nothing): 1 to
// 8 of upper-case letters, digits, '@', '#' and '$', as z/OS names them.
func CheckSysplex(s string) string {
	if s == "" || len(s) > 8 {
		return "a sysplex name is 1 to 8 characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '@' || c == '#' || c == '$') {
			return fmt.Sprintf("character %q: a sysplex name has upper-case letters, digits, '@', '#' and '$'", c)
		}
	}
	return ""
}

// checkServerName: 1–64 characters of [A-Za-z0-9._-], starting with a
// letter or digit (it goes into traps, syslog and STATUS=).
func checkServerName(s string) string {
	if s == "" || len(s) > 64 {
		return "must be 1 to 64 characters"
	}
	if s[0] == '-' || s[0] == '.' || s[0] == '_' {
		return "must start with a letter or digit"
	}
	for i := 0; i < len(s); i++ {
		if !isBare(s[i]) && s[i] != '.' {
			return fmt.Sprintf("character %q: use letters, digits, '.', '-' and '_'", s[i])
		}
	}
	return ""
}

func (c *checker) heartbeat(r rawHeartbeat, cfg *Config) {
	t := cfg.Heartbeat
	ok := true
	for _, f := range []struct {
		key string
		v   rawValue
		d   *time.Duration
		min time.Duration
		why string
	}{
		{"heartbeat.interval", r.Interval, &t.Interval, MinHeartbeatInterval,
			"each interval sends a command to every storage system"},
		{"heartbeat.detection_window", r.DetectionWindow, &t.DetectionWindow, MinDetectionWindow,
			"a shorter window freezes on the manager's own pauses, not on storage's silence"},
		{"heartbeat.request_timeout", r.RequestTimeout, &t.RequestTimeout, MinRequestTimeout,
			"a healthy storage system's answer takes longer"},
		{"heartbeat.poll_interval", r.PollInterval, &t.PollInterval, MinPollInterval,
			"each poll queries every pair; the heartbeat and pushed events carry detection"},
		{"heartbeat.retry_interval", r.RetryInterval, &t.RetryInterval, MinRetryInterval,
			"a failing storage system would be flooded with retries"},
	} {
		d, good := c.dur(f.key, f.v, *f.d)
		if good && d < f.min {
			c.add(ErrValue, nil, f.key, "%v: at least %v (%s)", d, f.min, f.why)
			good = false
		}
		*f.d = d
		ok = ok && good
	}
	if !ok {
		return // the timing rules would only repeat the bad durations
	}
	err := t.Validate()
	if err == nil {
		_, err = freeze.DeriveH(LowestCGTimeout, t)
	}
	if err != nil {
		// The rule is about the timings together: the problem is the
		// table's, at its header (or at its first key when the file
		// writes dotted keys, heartbeat.interval = ..., and no header).
		line := c.lineOf("heartbeat")
		for _, k := range []string{"interval", "detection_window", "request_timeout", "poll_interval", "retry_interval"} {
			if line == 0 {
				line = c.lineOf("heartbeat." + k)
			}
		}
		for _, e := range split(err) {
			c.problems = append(c.problems, Problem{Line: line, Key: "heartbeat", Msg: e.Error(), Kind: ErrTiming, Cause: e})
		}
		return
	}
	cfg.Heartbeat = t
}

// split undoes errors.Join, so that each error is a problem of its own line.
func split(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range j.Unwrap() {
			errs = append(errs, split(e)...)
		}
		return errs
	}
	return []error{err}
}

func (c *checker) ha(r rawHA, cfg *Config) {
	h := &cfg.HA
	if a := c.addr("ha.listen", r.Listen, TCP, VSock); a != nil {
		h.Listen, h.ListenSet = *a, true
		if a.Privileged() {
			c.warn(ErrValue, "ha.listen", "port %d is below 1024: the daemon needs CAP_NET_BIND_SERVICE (see lockstepd.service)", a.Port)
		}
	}
	if a := c.addr("ha.advertise", r.Advertise, TCP, VSock); a != nil {
		h.Advertise = a
	}
	files := map[string]string{}
	var set, unset []string
	for _, f := range []struct {
		key string
		v   rawValue
	}{{"cert_file", r.CertFile}, {"key_file", r.KeyFile}, {"ca_file", r.CAFile}} {
		if f.v.set {
			set = append(set, f.key)
			files[f.key] = c.path("ha."+f.key, f.v, "")
		} else {
			unset = append(unset, f.key)
		}
	}
	switch {
	case cfg.Server.Edition == EditionBasic:
		// Reported once below: HA keys have no place in the basic edition.
	case len(set) == 3:
		h.TLS = &TLSFiles{CertFile: files["cert_file"], KeyFile: files["key_file"], CAFile: files["ca_file"]}
	case len(set) > 0:
		for _, k := range unset {
			c.add(ErrRequired, nil, "ha."+k, "required with ha.%s: the HA link is mutual TLS (cert_file, key_file and ca_file go together)", strings.Join(set, " and ha."))
		}
	case h.ListenSet:
		for _, k := range unset {
			c.add(ErrRequired, nil, "ha."+k, "required: ha.listen is set, and the HA link is mutual TLS (cert_file, key_file and ca_file)")
		}
	}
	if d, ok := c.dur("ha.reconnect_interval", r.ReconnectInterval, DefaultReconnectInterval); ok {
		if d < MinReconnectInterval {
			c.add(ErrValue, nil, "ha.reconnect_interval", "%v: at least %v", d, MinReconnectInterval)
		}
		h.ReconnectInterval = d
	}
	h.ReconnectAttempts = c.integer("ha.reconnect_attempts", r.ReconnectAttempts, DefaultReconnectAttempts, 0, 1000)
	if s, ok := c.str("ha.source_ports", r.SourcePorts); ok {
		pr, err := ParsePortRange(s)
		switch {
		case err != nil:
			c.add(ErrValue, err, "ha.source_ports", "%v", err)
		case pr.First < 1024:
			c.add(ErrValue, nil, "ha.source_ports", "%q: ports below 1024 are privileged; use a range of 1024 or above", s)
		default:
			h.SourcePorts = &pr
		}
	}
	if name, ok := c.str("ha.partner_name", r.PartnerName); ok {
		if err := ha.ValidName(name); err != nil {
			c.add(ErrValue, err, "ha.partner_name", "%v", err)
		} else {
			h.PartnerName = name
		}
	}
	if s, ok := c.str("ha.partner_fingerprint", r.PartnerFP); ok {
		if fp, err := ha.ParseFingerprint(s); err != nil {
			c.add(ErrValue, err, "ha.partner_fingerprint", "%v", err)
		} else {
			h.PartnerFingerprint = fp
		}
	}
	if cfg.Server.Edition == EditionBasic {
		var used []string
		for _, f := range []struct {
			key string
			v   rawValue
		}{{"listen", r.Listen}, {"advertise", r.Advertise}, {"cert_file", r.CertFile}, {"key_file", r.KeyFile}, {"ca_file", r.CAFile},
			{"reconnect_interval", r.ReconnectInterval}, {"reconnect_attempts", r.ReconnectAttempts}, {"source_ports", r.SourcePorts},
			{"partner_name", r.PartnerName}, {"partner_fingerprint", r.PartnerFP}} {
			if f.v.set {
				used = append(used, f.key)
			}
		}
		if len(used) > 0 {
			key := "ha"
			if _, ok := c.lines[key]; !ok {
				key = "ha." + used[0]
			}
			c.add(ErrConflict, nil, key, "the basic edition has no HA, but [ha] sets %s: remove them or set server.edition = \"full\"", strings.Join(used, ", "))
		}
	}
}

func (c *checker) control(r rawControl, cfg *Config) {
	if g, ok := c.str("control.admin_group", r.AdminGroup); ok {
		// A POSIX portable group name: what groupadd accepts on Debian.
		good := g != "" && len(g) <= 32 && g[0] != '-'
		for i := 0; i < len(g); i++ {
			good = good && (isBare(g[i]) || g[i] == '.')
		}
		if !good {
			c.add(ErrValue, nil, "control.admin_group", "%q: a group name, 1 to 32 of letters, digits, '.', '_' and '-'", g)
		} else {
			cfg.Control.AdminGroup = g
		}
	}
	s, ok := c.str("control.bus", r.Bus)
	if !ok {
		return
	}
	switch s {
	case "system":
		cfg.Control.Bus, cfg.Control.Address = SystemBus, ""
	case "session":
		cfg.Control.Bus, cfg.Control.Address = SessionBus, ""
	default:
		if err := checkDBusAddress(s); err != nil {
			c.add(ErrValue, err, "control.bus", "%q is not \"system\", \"session\" or a D-Bus address such as \"unix:path=/run/lockstep/bus\" (%v)", s, err)
			return
		}
		cfg.Control.Bus, cfg.Control.Address = AddressBus, s
	}
}

func (c *checker) log(r rawLog, cfg *Config) {
	levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
	cfg.Log.Level = levels[c.choice("log.level", r.Level, "info", "debug", "info", "warn", "error")]
	cfg.Log.Format = LogFormat(c.choice("log.format", r.Format, string(LogAuto), string(LogAuto), string(LogJournal), string(LogText)))
}

func (c *checker) syslog(r rawSyslog, cfg *Config) {
	cfg.Syslog.Target = c.addr("syslog.target", r.Target, UDP, TCP)
	if s, ok := c.str("syslog.app_name", r.AppName); ok {
		// RFC 5424 APP-NAME: 1*48PRINTUSASCII.
		good := s != "" && len(s) <= 48
		for i := 0; i < len(s); i++ {
			good = good && s[i] >= 33 && s[i] <= 126
		}
		if !good {
			c.add(ErrValue, nil, "syslog.app_name", "%q: 1 to 48 printable ASCII characters, no spaces (RFC 5424 APP-NAME)", s)
		} else {
			cfg.Syslog.AppName = s
		}
	}
}

func (c *checker) snmp(r rawSNMP, cfg *Config) {
	s := &cfg.SNMP
	if v, ok := c.str("snmp.enterprise_oid", r.EnterpriseOID); ok {
		if oid, err := ParseOID(v); err != nil {
			c.add(ErrValue, err, "snmp.enterprise_oid", "%v", err)
		} else {
			s.EnterpriseOID = oid
		}
	}
	s.TrapListen = c.addr("snmp.trap_listen", r.TrapListen, UDP)
	if s.TrapListen != nil && s.TrapListen.Privileged() {
		c.warn(ErrValue, "snmp.trap_listen", "port %d is below 1024: the daemon needs CAP_NET_BIND_SERVICE (see lockstepd.service)", s.TrapListen.Port)
	}
	s.EngineIDFile = c.path("snmp.engine_id_file", r.EngineIDFile, filepath.Join(cfg.Server.StateDir, EngineIDFileName))

	seen := map[Addr]int{}
	for i, rm := range r.Managers {
		m, ok := c.manager(fmt.Sprintf("snmp.manager[%d]", i), rm)
		if m.Address.IsZero() {
			continue
		}
		if j, dup := seen[m.Address]; dup {
			key := fmt.Sprintf("snmp.manager[%d].address", i)
			other := fmt.Sprintf("snmp.manager[%d]", j)
			c.add(ErrDuplicate, nil, key, "%s is already the address of %s (line %d): one entry per manager", m.Address, other, c.lineOf(other))
			continue
		}
		seen[m.Address] = i
		if ok {
			s.Managers = append(s.Managers, m)
		}
	}
}

func (c *checker) manager(at string, r rawManager) (Manager, bool) {
	before := len(c.problems)
	k := func(name string) string { return at + "." + name }
	m := Manager{
		Notification: Trap, AuthProtocol: SHA256, PrivProtocol: AES,
		Retries: DefaultRetries, Timeout: DefaultTimeout, Queue: DefaultQueue,
	}
	if !r.Address.set {
		c.add(ErrRequired, nil, k("address"), "required: where to send, such as \"udp://nms.example:162\"")
	} else if a := c.addr(k("address"), r.Address, UDP); a != nil {
		m.Address = *a
	}
	if !r.Version.set {
		c.add(ErrRequired, nil, k("version"), "required: \"v2c\" or \"v3\"")
	} else {
		m.Version = SNMPVersion(c.choice(k("version"), r.Version, "", string(V2c), string(V3)))
	}
	m.Notification = Notification(c.choice(k("notification"), r.Notification, string(Trap), string(Trap), string(Inform)))
	m.CommunityFile = c.path(k("community_file"), r.CommunityFile, "")
	if u, ok := c.str(k("user"), r.User); ok {
		if u == "" || len(u) > 32 {
			c.add(ErrValue, nil, k("user"), "%q: 1 to 32 characters", u)
		}
		m.User = u
	}
	m.AuthProtocol = AuthProtocol(c.choice(k("auth_protocol"), r.AuthProtocol, string(SHA256),
		string(SHA224), string(SHA256), string(SHA384), string(SHA512)))
	if r.PrivProtocol.v == "AES-128" {
		r.PrivProtocol.v = string(AES)
	}
	m.PrivProtocol = PrivProtocol(c.choice(k("priv_protocol"), r.PrivProtocol, string(AES),
		string(AES), string(AES192), string(AES256)))
	m.AuthKeyFile = c.path(k("auth_key_file"), r.AuthKeyFile, "")
	m.PrivKeyFile = c.path(k("priv_key_file"), r.PrivKeyFile, "")
	m.Retries = c.integer(k("retries"), r.Retries, DefaultRetries, 0, 20)
	if d, ok := c.dur(k("timeout"), r.Timeout, DefaultTimeout); ok {
		switch {
		case d > time.Minute:
			c.add(ErrValue, nil, k("timeout"), "%v: at most 1m", d)
		case d < MinInformTimeout:
			c.add(ErrValue, nil, k("timeout"), "%v: at least %v (the manager's acknowledgement needs a round trip)", d, MinInformTimeout)
		}
		m.Timeout = d
	}
	m.Queue = c.integer(k("queue"), r.Queue, DefaultQueue, 1, 1_000_000)

	v3only := []struct {
		key string
		v   rawValue
	}{{"user", r.User}, {"auth_protocol", r.AuthProtocol}, {"priv_protocol", r.PrivProtocol},
		{"auth_key_file", r.AuthKeyFile}, {"priv_key_file", r.PrivKeyFile}}
	switch m.Version {
	case V2c:
		if !r.CommunityFile.set {
			c.add(ErrRequired, nil, k("community_file"), "required for v2c: the file that holds the community string")
		}
		for _, f := range v3only {
			if f.v.set {
				c.add(ErrConflict, nil, k(f.key), "is for v3 managers; this one is v2c")
			}
		}
	case V3:
		for _, f := range []struct {
			key, why string
			v        rawValue
		}{{"user", "the USM user name", r.User},
			{"auth_key_file", "the file that holds the authentication passphrase", r.AuthKeyFile},
			{"priv_key_file", "the file that holds the privacy passphrase", r.PrivKeyFile}} {
			if !f.v.set {
				c.add(ErrRequired, nil, k(f.key), "required for v3 (authPriv): %s", f.why)
			}
		}
		if r.CommunityFile.set {
			c.add(ErrConflict, nil, k("community_file"), "is for v2c managers; this one is v3")
		}
	}
	if m.Notification == Trap {
		for _, f := range []struct {
			key string
			v   rawValue
		}{{"retries", r.Retries}, {"timeout", r.Timeout}} {
			if f.v.set {
				c.warn(ErrConflict, k(f.key), "applies to informs only: ignored for notification = \"trap\"")
			}
		}
	}
	return m, len(c.problems) == before
}
