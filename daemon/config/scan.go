package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// BurntSushi/toml v1.6 keeps the position of every key to itself: its
// MetaData tells which keys exist and which were not decoded, but not
// where they are. keyScan finds the line of every key by reading the text
// again. It runs only on text that toml.Decode accepted, so it can be a
// forgiving reader rather than a parser; it must only never panic and
// always make progress, whatever the input.

// keyLine is one key of the document.
type keyLine struct {
	key  toml.Key // as written, no array indices: the form of MetaData.Keys
	path string   // with array-of-tables indices: "snmp.manager[1].user"
	line int
}

type keyScan struct {
	s      string
	i      int
	line   int
	arrays map[string]int // indexed path of an array of tables -> elements seen
	keys   []keyLine
}

// scanKeys lists every key of text, in document order.
func scanKeys(text string) []keyLine {
	sc := &keyScan{s: text, line: 1, arrays: map[string]int{}}
	sc.document()
	return sc.keys
}

// linesOf maps the indexed path of every key to its line (the first, if a
// path occurs twice).
func linesOf(keys []keyLine) map[string]int {
	m := make(map[string]int, len(keys))
	for _, k := range keys {
		if _, ok := m[k.path]; !ok {
			m[k.path] = k.line
		}
	}
	return m
}

func (sc *keyScan) eof() bool { return sc.i >= len(sc.s) }

func (sc *keyScan) peek(off int) byte {
	if j := sc.i + off; j < len(sc.s) {
		return sc.s[j]
	}
	return 0
}

func (sc *keyScan) advance() {
	if sc.i < len(sc.s) {
		if sc.s[sc.i] == '\n' {
			sc.line++
		}
		sc.i++
	}
}

func (sc *keyScan) skipSpace() {
	for !sc.eof() && (sc.s[sc.i] == ' ' || sc.s[sc.i] == '\t') {
		sc.i++
	}
}

// skipBlank skips white space, newlines and comments.
func (sc *keyScan) skipBlank() {
	for !sc.eof() {
		switch sc.s[sc.i] {
		case ' ', '\t', '\r', '\n':
			sc.advance()
		case '#':
			sc.skipLine()
		default:
			return
		}
	}
}

// skipLine moves past the next newline.
func (sc *keyScan) skipLine() {
	for !sc.eof() {
		c := sc.s[sc.i]
		sc.advance()
		if c == '\n' {
			return
		}
	}
}

func (sc *keyScan) document() {
	tablePath := ""
	var table toml.Key
	for {
		sc.skipBlank()
		if sc.eof() {
			return
		}
		line := sc.line
		switch {
		case sc.s[sc.i] == '[' && sc.peek(1) == '[':
			sc.i += 2
			k := sc.key()
			if len(k) == 0 {
				sc.skipLine()
				continue
			}
			p := join(sc.resolve(k[:len(k)-1]), quote(k[len(k)-1]))
			n := sc.arrays[p]
			sc.arrays[p] = n + 1
			table, tablePath = k, fmt.Sprintf("%s[%d]", p, n)
			sc.add(k, tablePath, line)
			sc.skipLine()
		case sc.s[sc.i] == '[':
			sc.i++
			k := sc.key()
			if len(k) == 0 {
				sc.skipLine()
				continue
			}
			table, tablePath = k, sc.resolve(k)
			sc.add(k, tablePath, line)
			sc.skipLine()
		default:
			k := sc.key()
			if len(k) == 0 {
				sc.skipLine()
				continue
			}
			full := append(append(toml.Key{}, table...), k...)
			p := join(tablePath, dotted(k))
			sc.add(full, p, line)
			sc.skipSpace()
			if sc.peek(0) == '=' {
				sc.i++
			}
			sc.skipSpace()
			sc.value(full, p)
			sc.skipLine()
		}
	}
}

func (sc *keyScan) add(k toml.Key, path string, line int) {
	sc.keys = append(sc.keys, keyLine{key: append(toml.Key{}, k...), path: path, line: line})
}

// resolve turns a table key into its indexed path: a component that names
// an array of tables refers to its last element so far.
func (sc *keyScan) resolve(k toml.Key) string {
	p := ""
	for _, c := range k {
		p = join(p, quote(c))
		if n, ok := sc.arrays[p]; ok && n > 0 {
			p = fmt.Sprintf("%s[%d]", p, n-1)
		}
	}
	return p
}

// key reads a possibly dotted key; it returns nil when there is none.
func (sc *keyScan) key() toml.Key {
	var k toml.Key
	for {
		sc.skipSpace()
		if sc.eof() {
			return k
		}
		var c string
		switch b := sc.s[sc.i]; {
		case b == '"':
			c = unescape(sc.quoted('"'))
		case b == '\'':
			c = sc.quoted('\'')
		case isBare(b):
			start := sc.i
			for !sc.eof() && isBare(sc.s[sc.i]) {
				sc.i++
			}
			c = sc.s[start:sc.i]
		default:
			return k
		}
		k = append(k, c)
		sc.skipSpace()
		if sc.peek(0) != '.' {
			return k
		}
		sc.i++
	}
}

// quoted reads a one-line string opened by q at the current position and
// returns its raw contents (escapes left as written).
func (sc *keyScan) quoted(q byte) string {
	sc.i++
	start := sc.i
	for !sc.eof() {
		switch c := sc.s[sc.i]; {
		case c == q:
			sc.i++
			return sc.s[start : sc.i-1]
		case c == '\n':
			return sc.s[start:sc.i]
		case c == '\\' && q == '"' && sc.peek(1) != '\n':
			sc.i = min(sc.i+2, len(sc.s))
		default:
			sc.i++
		}
	}
	return sc.s[start:sc.i]
}

// value skips a value, recording the keys of inline tables (in arrays
// too: "key[i].inner").
func (sc *keyScan) value(key toml.Key, path string) {
	switch {
	case sc.eof():
	case strings.HasPrefix(sc.s[sc.i:], `"""`), strings.HasPrefix(sc.s[sc.i:], `'''`):
		q := sc.s[sc.i : sc.i+3]
		sc.i += 3
		for !sc.eof() {
			if q == `"""` && sc.s[sc.i] == '\\' {
				sc.advance()
				sc.advance()
				continue
			}
			if strings.HasPrefix(sc.s[sc.i:], q) {
				sc.i += 3
				// Up to two quotes may close the string's content.
				for j := 0; j < 2 && sc.peek(0) == q[0]; j++ {
					sc.i++
				}
				return
			}
			sc.advance()
		}
	case sc.s[sc.i] == '"' || sc.s[sc.i] == '\'':
		sc.quoted(sc.s[sc.i])
	case sc.s[sc.i] == '[':
		sc.i++
		for n := 0; ; {
			sc.skipBlank()
			if sc.eof() {
				return
			}
			switch sc.s[sc.i] {
			case ']':
				sc.i++
				return
			case ',':
				sc.i++
				n++
			default:
				at := sc.i
				sc.value(key, fmt.Sprintf("%s[%d]", path, n))
				if sc.i == at {
					sc.advance()
				}
			}
		}
	case sc.s[sc.i] == '{':
		sc.i++
		for {
			sc.skipBlank()
			if sc.eof() {
				return
			}
			switch sc.s[sc.i] {
			case '}':
				sc.i++
				return
			case ',':
				sc.i++
				continue
			}
			line := sc.line
			k := sc.key()
			if len(k) == 0 {
				sc.advance()
				continue
			}
			full := append(append(toml.Key{}, key...), k...)
			p := join(path, dotted(k))
			sc.add(full, p, line)
			sc.skipSpace()
			if sc.peek(0) == '=' {
				sc.i++
			}
			sc.skipSpace()
			at := sc.i
			sc.value(full, p)
			if sc.i == at {
				sc.advance()
			}
		}
	default:
		for !sc.eof() && !strings.ContainsRune(" \t\r\n,]}#", rune(sc.s[sc.i])) {
			sc.i++
		}
	}
}

func isBare(b byte) bool {
	return b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_' || b == '-'
}

// quote writes one key component as toml.Key.String does.
func quote(c string) string { return toml.Key{c}.String() }

func dotted(k toml.Key) string { return k.String() }

func join(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}

// parentPath strips the last component or index of an indexed path:
// "a.b[1].c" -> "a.b[1]" -> "a.b" -> "a" -> "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// unescape decodes the escapes of a TOML basic string (TOML 1.1: with \e
// and \xHH); an escape it does not know is kept as written.
func unescape(raw string) string {
	if !strings.Contains(raw, "\\") {
		return raw
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' || i+1 >= len(raw) {
			b.WriteByte(raw[i])
			continue
		}
		i++
		switch e := raw[i]; e {
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case 'e':
			b.WriteByte(0x1b)
		case '"', '\\':
			b.WriteByte(e)
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if i+n <= len(raw)-1 {
				if r, err := strconv.ParseUint(raw[i+1:i+1+n], 16, 32); err == nil {
					b.WriteRune(rune(r))
					i += n
					continue
				}
			}
			b.WriteByte('\\')
			b.WriteByte(e)
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return b.String()
}
