package parse

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// JSONKeys names the top-level keys of a JSON body that become a record's
// severity, body and timestamp, each list in order of preference. A nil or
// empty list maps nothing to that field. Typical: Severity {"level",
// "severity", "lvl"}, Message {"msg", "message"}, Time {"time", "ts",
// "timestamp"}.
type JSONKeys struct {
	Severity, Message, Time []string
}

// ErrNotObject is returned by JSONParser.Parse for a body that does not start
// (after whitespace) with '{'. It is a plain value, so the common case of a
// line that is not JSON costs no allocation.
var ErrNotObject = errors.New("cannot parse JSON body: not an object")

// maxInternedKeys and maxInternedLen bound the strings a JSONParser keeps to
// reuse as attribute keys and severity texts (at most 64 KiB of them).
const (
	maxInternedKeys = 1024
	maxInternedLen  = 64
)

// JSONParser decodes JSON object bodies into log records, without an
// intermediate map[string]any or tree. It keeps between calls its buffers (as
// large as the largest body's strings) and up to 1024 attribute keys and
// severity texts it has seen, so that a line's keys are not allocated again.
// The zero value is ready to use. A JSONParser is not safe for concurrent
// use: the receiver has one per goroutine that parses.
type JSONParser struct {
	// MaxDepth caps how deep objects and arrays nest (the body is depth 1);
	// 0 means DefaultJSONMaxDepth.
	MaxDepth int
	// MaxValues caps the values (members and elements at every depth) in a
	// body; 0 means DefaultJSONMaxValues.
	MaxValues int

	members []member
	sizes   []int32 // of the nested objects and arrays, in document order
	next    int     // the index in sizes of the next container value writes
	keyBuf  []byte  // unescaped keys that had escapes; member.key* index it
	tmp     []byte  // one unescaped string at a time
	fix     []byte  // one string made valid UTF-8 at a time
	interns map[string]string
}

// member is one top-level key and value of the body being parsed.
type member struct {
	keyStart, keyEnd int // in the body, or in keyBuf if keyEsc
	valStart         int
	sizesStart       int // the index in sizes of the value's first container
	keyEsc           bool
}

// Parse decodes body, a JSON object, into rec. Every top-level key becomes an
// attribute, with pcommon.Map.PutEmpty's semantics (a key rec already has is
// overwritten; of duplicate keys the last wins):
//   - strings as strings, decoded as encoding/json does (a lone surrogate
//     escape or a byte that is not UTF-8 becomes U+FFFD);
//   - integers written without fraction or exponent that fit int64 as ints,
//     other numbers as doubles, a number beyond float64 (1e400) as the string
//     it was written as;
//   - booleans as bools, objects as maps, arrays as slices, null as an empty
//     value.
//
// Except the keys that keys maps. For each field, the first key of its list
// that the body holds with a usable value (its last occurrence, if repeated)
// sets the field, and every occurrence of that key is left out of the
// attributes; a key whose value is not usable stays an attribute, and the
// next key of the list is tried.
//
// Severity: a string or a number. SeverityText is the string, or the number
// as written; SeverityNumber follows the OpenTelemetry log data model's
// example mappings (syslog, zap and log4j columns of Appendix B), names
// matched ignoring case:
//
//	trace                               TRACE  (1)
//	debug, dbg                          DEBUG  (5)
//	info, information, informational    INFO   (9)
//	notice                              INFO2  (10)
//	warn, warning                       WARN   (13)
//	error, err                          ERROR  (17)
//	critical, crit, dpanic              ERROR2 (18)
//	alert, panic                        ERROR3 (19)
//	fatal, emergency, emerg             FATAL  (21)
//
// Integers, and strings of digits (journald's PRIORITY), are syslog
// severities 0 to 7 (0 emergency, 1 alert, 2 critical, 3 error, 4 warning,
// 5 notice, 6 info, 7 debug, mapped as their names above) or the bunyan/pino
// levels 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal. zap's and
// logrus's numbers are not mapped: both write names in JSON, and their numbers
// contradict syslog's (logrus 4 is info, syslog 4 warning; zap 0 is info,
// syslog 0 emergency). Anything else leaves SeverityNumber unspecified.
//
// Message: a string, which becomes the Body. Without one, Body is not set.
//
// Time: an RFC 3339 string (ParseTime), or a positive number since the epoch
// whose magnitude says its unit: below 1e10 seconds, below 1e13
// milliseconds, below 1e16 microseconds, else nanoseconds (each unit so reads
// every time from 1970-04-26 to 2262). A fraction is kept to the nanosecond:
// zap's "ts":1705314600.123456 is exact. It sets Timestamp.
//
// A body that is not a JSON object (RFC 8259, strictly: no NaN, no trailing
// commas, no raw control characters in strings) is an error, ErrNotObject if
// it does not start with '{'; so is one nested deeper than MaxDepth or with
// more values than MaxValues. The error names what is wrong or the cap, and
// the byte offset. On error rec is not changed: the whole body is checked
// before rec is written.
func (p *JSONParser) Parse(body []byte, keys JSONKeys, rec plog.LogRecord) error {
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return ErrNotObject
	}
	if err := p.scan(body, i); err != nil {
		return fmt.Errorf("cannot parse JSON body: %w", err)
	}

	sev := p.pick(body, keys.Severity, fieldSeverity)
	msg := p.pick(body, keys.Message, fieldMessage)
	ts := p.pick(body, keys.Time, fieldTime)

	attrs := rec.Attributes()
	attrs.EnsureCapacity(attrs.Len() + len(p.members))
	for mi := range p.members {
		m := &p.members[mi]
		key := p.key(body, m)
		if p.sameKey(body, sev, key) || p.sameKey(body, msg, key) || p.sameKey(body, ts, key) {
			continue
		}
		p.next = m.sizesStart
		p.value(attrs.PutEmpty(p.intern(key)), body, m.valStart)
	}

	if sev >= 0 {
		v := body[p.members[sev].valStart:]
		var n plog.SeverityNumber
		var text []byte
		if v[0] == '"' {
			text, _ = p.str(body, p.members[sev].valStart)
			n = severityNumber(text)
		} else {
			text = v[:skipNumber(v)]
			n = severityNumber(text)
		}
		rec.SetSeverityText(p.intern(text))
		rec.SetSeverityNumber(n)
	}
	if msg >= 0 {
		text, _ := p.str(body, p.members[msg].valStart)
		rec.Body().SetStr(string(text))
	}
	if ts >= 0 {
		ns, _ := p.timestamp(body, p.members[ts].valStart)
		rec.SetTimestamp(pcommon.Timestamp(ns))
	}
	return nil
}

// scan checks the whole body, the object at body[i], and records its members.
func (p *JSONParser) scan(body []byte, i int) error {
	p.sizes = p.sizes[:0]
	s := jsonScanner{data: body, maxDepth: p.MaxDepth, maxValues: p.MaxValues, sizes: &p.sizes}
	if s.maxDepth <= 0 {
		s.maxDepth = DefaultJSONMaxDepth
	}
	if s.maxValues <= 0 {
		s.maxValues = DefaultJSONMaxValues
	}
	p.members = p.members[:0]
	p.keyBuf = p.keyBuf[:0]
	i = skipWS(body, i+1)
	if i < len(body) && body[i] == '}' {
		i++
	} else {
		for {
			if i >= len(body) || body[i] != '"' {
				return s.errAt(i, "expecting '\"' to begin a key")
			}
			key, tmp, end, err := unquote(p.tmp, body, i)
			p.tmp = tmp
			if err != nil {
				return err
			}
			m := member{keyStart: i + 1, keyEnd: end - 1}
			if len(key) > 0 && &key[0] != &body[i+1] { // it had escapes
				m.keyEsc = true
				m.keyStart = len(p.keyBuf)
				p.keyBuf = append(p.keyBuf, key...)
				m.keyEnd = len(p.keyBuf)
			}
			i = skipWS(body, end)
			if i >= len(body) || body[i] != ':' {
				return s.errAt(i, "expecting ':' after a key")
			}
			m.valStart = skipWS(body, i+1)
			m.sizesStart = len(p.sizes)
			if i, err = s.value(m.valStart, 1); err != nil {
				return err
			}
			p.members = append(p.members, m)
			i = skipWS(body, i)
			if i < len(body) && body[i] == ',' {
				i = skipWS(body, i+1)
				continue
			}
			if i < len(body) && body[i] == '}' {
				i++
				break
			}
			return s.errAt(i, "expecting ',' or '}' after an object value")
		}
	}
	if i = skipWS(body, i); i < len(body) {
		return s.errAt(i, "unexpected data after the object")
	}
	return nil
}

func (p *JSONParser) key(body []byte, m *member) []byte {
	if m.keyEsc {
		return p.keyBuf[m.keyStart:m.keyEnd]
	}
	return body[m.keyStart:m.keyEnd]
}

// sameKey reports whether the member at index mi (if any) has key key.
func (p *JSONParser) sameKey(body []byte, mi int, key []byte) bool {
	return mi >= 0 && string(p.key(body, &p.members[mi])) == string(key)
}

type field uint8

const (
	fieldSeverity field = iota
	fieldMessage
	fieldTime
)

// pick returns the index of the member that sets a field: of the members
// whose key comes first in names and whose value is usable, the last; or -1.
func (p *JSONParser) pick(body []byte, names []string, f field) int {
	best, bestRank := -1, len(names)
	if bestRank == 0 {
		return -1
	}
	for mi := range p.members {
		m := &p.members[mi]
		key := p.key(body, m)
		rank := -1
		for r, name := range names[:min(bestRank+1, len(names))] {
			if name == string(key) {
				rank = r
				break
			}
		}
		if rank < 0 {
			continue
		}
		c := body[m.valStart]
		switch f {
		case fieldSeverity:
			if c != '"' && c != '-' && (c < '0' || c > '9') {
				continue
			}
		case fieldMessage:
			if c != '"' {
				continue
			}
		case fieldTime:
			if _, ok := p.timestamp(body, m.valStart); !ok {
				continue
			}
		}
		best, bestRank = mi, rank
	}
	return best
}

// timestamp returns the time in the value at body[i], if it is one.
func (p *JSONParser) timestamp(body []byte, i int) (int64, bool) {
	if body[i] == '"' {
		text, _ := p.str(body, i)
		ns, err := ParseTime(text)
		return ns, err == nil
	}
	if c := body[i]; c >= '0' && c <= '9' {
		return epochNanos(body[i : i+skipNumber(body[i:])])
	}
	return 0, false
}

// str returns the decoded string whose opening quote is at body[i] (valid
// until the next call) and the offset just past its closing quote; body has
// been checked.
func (p *JSONParser) str(body []byte, i int) (text []byte, end int) {
	text, p.tmp, end, _ = unquote(p.tmp, body, i)
	if !utf8.Valid(text) {
		p.fix = appendValidUTF8(p.fix[:0], text)
		text = p.fix
	}
	return text, end
}

// intern returns b as a string, reusing the one made for earlier equal bytes:
// attribute keys and severity texts repeat from line to line.
func (p *JSONParser) intern(b []byte) string {
	if s, ok := p.interns[string(b)]; ok {
		return s
	}
	s, k := string(b), ""
	if utf8.ValidString(s) {
		k = s
	} else {
		k, s = s, string(appendValidUTF8(nil, b))
	}
	if len(b) <= maxInternedLen {
		if p.interns == nil {
			p.interns = make(map[string]string)
		} else if len(p.interns) >= maxInternedKeys {
			clear(p.interns) // keys churn: start again rather than grow
		}
		p.interns[k] = s
	}
	return s
}

// value writes the checked JSON value at body[i] into v and returns the
// offset just past it. Its recursion is bounded by the depth cap scan checked.
func (p *JSONParser) value(v pcommon.Value, body []byte, i int) int {
	switch body[i] {
	case '"':
		text, end := p.str(body, i)
		v.SetStr(string(text))
		return end
	case '{':
		m := v.SetEmptyMap()
		m.EnsureCapacity(p.size())
		i = skipWS(body, i+1)
		if body[i] == '}' {
			return i + 1
		}
		for {
			key, end := p.str(body, i)
			kv := m.PutEmpty(p.intern(key))
			i = skipWS(body, skipWS(body, end)+1) // past ':'
			i = skipWS(body, p.value(kv, body, i))
			if body[i] == '}' {
				return i + 1
			}
			i = skipWS(body, i+1) // past ','
		}
	case '[':
		sl := v.SetEmptySlice()
		sl.EnsureCapacity(p.size())
		i = skipWS(body, i+1)
		if body[i] == ']' {
			return i + 1
		}
		for {
			i = skipWS(body, p.value(sl.AppendEmpty(), body, i))
			if body[i] == ']' {
				return i + 1
			}
			i = skipWS(body, i+1)
		}
	case 't':
		v.SetBool(true)
		return i + len("true")
	case 'f':
		v.SetBool(false)
		return i + len("false")
	case 'n':
		return i + len("null")
	default:
		n := skipNumber(body[i:])
		setNumber(v, body[i:i+n])
		return i + n
	}
}

// size returns the number of members or elements of the next container
// value writes, as scan counted them.
func (p *JSONParser) size() int {
	n := 0
	if p.next < len(p.sizes) {
		n = int(p.sizes[p.next])
	}
	p.next++
	return n
}

// skipNumber returns the length of the checked number at the start of b.
func skipNumber(b []byte) int {
	n := 0
	for n < len(b) {
		switch c := b[n]; {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			n++
		default:
			return n
		}
	}
	return n
}

// setNumber sets v to the checked JSON number num: an int if it is written
// without fraction or exponent and fits int64, else a double, or the string
// num if it is beyond float64.
func setNumber(v pcommon.Value, num []byte) {
	if n, ok := parseInt(num); ok {
		v.SetInt(n)
		return
	}
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil || math.IsInf(f, 0) {
		v.SetStr(string(num))
		return
	}
	v.SetDouble(f)
}

// parseInt parses an optionally negative run of decimal digits that fits
// int64.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	switch {
	case neg && u <= 1<<63:
		return -int64(u), true //nolint:gosec // u <= 1<<63: -int64(1<<63) wraps to MinInt64, which is right
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}
