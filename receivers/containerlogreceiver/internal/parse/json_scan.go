package parse

import (
	"encoding/binary"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// Caps on the JSON this package reads, defaults for JSONParser's fields and
// the caps on the values Docker skips.
const (
	// DefaultJSONMaxDepth is how deep objects and arrays may nest; the
	// body's own object is depth 1. It bounds the scanner's recursion.
	DefaultJSONMaxDepth = 32
	// DefaultJSONMaxValues is how many values (object members and array
	// elements, at every depth) a body may hold. It bounds the attributes a
	// line becomes, and the cost of pcommon.Map.PutEmpty, which searches the
	// keys put before it: an object of n keys costs n²/2 string comparisons.
	// At 256 the worst body takes ~0.2 ms, 30 times a typical 1 KB line; at
	// 1024 it took 3 ms (BenchmarkJSONParserMaxValues).
	DefaultJSONMaxValues = 256
)

// jsonScanner checks JSON text against RFC 8259, strictly (as encoding/json
// does: no NaN, no raw control characters in strings, no trailing commas),
// with caps on nesting and on the number of values. Bytes that are not UTF-8
// are accepted inside strings, as encoding/json accepts them.
type jsonScanner struct {
	data      []byte
	maxDepth  int
	maxValues int
	values    int
	// sizes, if not nil, gets the number of members or elements of each
	// object and array, in the order their first bytes appear.
	sizes *[]int32
}

// open records a container about to be scanned in sizes, if kept, and
// returns its index there, or -1.
func (s *jsonScanner) open() int {
	if s.sizes == nil {
		return -1
	}
	*s.sizes = append(*s.sizes, 0)
	return len(*s.sizes) - 1
}

// count adds one member or element to the container at index ci of sizes.
func (s *jsonScanner) count(ci int) {
	if ci >= 0 {
		(*s.sizes)[ci]++
	}
}

// scanError is a JSON syntax or cap error at a byte offset of the input.
type scanError struct {
	off int
	msg string
}

func (e *scanError) Error() string {
	return fmt.Sprintf("%s at byte %d", e.msg, e.off)
}

func (s *jsonScanner) errAt(i int, msg string) error {
	if i >= len(s.data) {
		return &scanError{off: len(s.data), msg: "unexpected end of input, " + msg}
	}
	return &scanError{off: i, msg: fmt.Sprintf("invalid character %s, %s", quoteByte(s.data[i]), msg)}
}

// skipWS returns the offset of the first byte at or after i that is not JSON
// whitespace.
func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// value checks the value starting at data[i], at nesting depth depth (of the
// object or array holding it), and returns the offset just past it.
func (s *jsonScanner) value(i, depth int) (int, error) {
	s.values++
	if s.values > s.maxValues {
		return i, &scanError{off: i, msg: fmt.Sprintf("more than %d values (the JSON value cap)", s.maxValues)}
	}
	if i >= len(s.data) {
		return i, s.errAt(i, "expecting a value")
	}
	switch c := s.data[i]; c {
	case '{':
		return s.object(i, depth+1)
	case '[':
		return s.array(i, depth+1)
	case '"':
		return s.str(i)
	case 't':
		return s.literal(i, "true")
	case 'f':
		return s.literal(i, "false")
	case 'n':
		return s.literal(i, "null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return s.number(i)
		}
		return i, s.errAt(i, "expecting a value")
	}
}

func (s *jsonScanner) depthError(i int) error {
	return &scanError{off: i, msg: fmt.Sprintf("nested deeper than %d levels (the JSON depth cap)", s.maxDepth)}
}

// object checks the object whose '{' is at data[i].
func (s *jsonScanner) object(i, depth int) (int, error) {
	if depth > s.maxDepth {
		return i, s.depthError(i)
	}
	ci := s.open()
	i = skipWS(s.data, i+1)
	if i < len(s.data) && s.data[i] == '}' {
		return i + 1, nil
	}
	for {
		s.count(ci)
		if i >= len(s.data) || s.data[i] != '"' {
			return i, s.errAt(i, "expecting '\"' to begin a key")
		}
		end, err := s.str(i)
		if err != nil {
			return end, err
		}
		i = skipWS(s.data, end)
		if i >= len(s.data) || s.data[i] != ':' {
			return i, s.errAt(i, "expecting ':' after a key")
		}
		if i, err = s.value(skipWS(s.data, i+1), depth); err != nil {
			return i, err
		}
		i = skipWS(s.data, i)
		if i < len(s.data) {
			switch s.data[i] {
			case ',':
				i = skipWS(s.data, i+1)
				continue
			case '}':
				return i + 1, nil
			}
		}
		return i, s.errAt(i, "expecting ',' or '}' after an object value")
	}
}

// array checks the array whose '[' is at data[i].
func (s *jsonScanner) array(i, depth int) (int, error) {
	if depth > s.maxDepth {
		return i, s.depthError(i)
	}
	ci := s.open()
	i = skipWS(s.data, i+1)
	if i < len(s.data) && s.data[i] == ']' {
		return i + 1, nil
	}
	for {
		s.count(ci)
		var err error
		if i, err = s.value(i, depth); err != nil {
			return i, err
		}
		i = skipWS(s.data, i)
		if i < len(s.data) {
			switch s.data[i] {
			case ',':
				i = skipWS(s.data, i+1)
				continue
			case ']':
				return i + 1, nil
			}
		}
		return i, s.errAt(i, "expecting ',' or ']' after an array element")
	}
}

func (s *jsonScanner) literal(i int, lit string) (int, error) {
	if len(s.data)-i < len(lit) || string(s.data[i:i+len(lit)]) != lit {
		return i, &scanError{off: i, msg: "invalid literal, expecting " + lit}
	}
	return i + len(lit), nil
}

// number checks the number starting at data[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?
func (s *jsonScanner) number(i int) (int, error) {
	d := s.data
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		i = skipDigits(d, i+1)
	default:
		return i, s.errAt(i, "expecting a digit in a number")
	}
	if i < len(d) && d[i] == '.' {
		j := skipDigits(d, i+1)
		if j == i+1 {
			return j, s.errAt(j, "expecting a digit after the decimal point")
		}
		i = j
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := skipDigits(d, i)
		if j == i {
			return j, s.errAt(j, "expecting a digit in the exponent")
		}
		i = j
	}
	return i, nil
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// strPlain marks the bytes that a string holds as they are: not '"', not '\\'
// and not a control character.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str checks the string whose opening '"' is at data[i] and returns the
// offset just past its closing '"'. unquote checks and decodes.
func (s *jsonScanner) str(i int) (end int, err error) {
	d := s.data
	j := i + 1
	for {
		// Eight bytes at a time while none needs a look (SWAR, as in
		// simdjson's fallback kernel); then byte by byte to the one that does.
		for j+8 <= len(d) && !hasStrSpecial(binary.LittleEndian.Uint64(d[j:])) {
			j += 8
		}
		for j < len(d) && strPlain[d[j]] {
			j++
		}
		if j >= len(d) {
			return j, &scanError{off: i, msg: "unterminated string"}
		}
		switch c := d[j]; c {
		case '"':
			return j + 1, nil
		case '\\':
			if j+1 >= len(d) {
				return j, &scanError{off: i, msg: "unterminated string"}
			}
			switch d[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if _, ok := hex4(d[j+2:]); !ok {
					return j, &scanError{off: j, msg: `invalid \u escape in string`}
				}
				j += 6
			default:
				return j, &scanError{off: j, msg: "invalid escape " + quote(d[j:j+2]) + " in string"}
			}
		default:
			return j, &scanError{off: j, msg: fmt.Sprintf("control character 0x%02x in string", c)}
		}
	}
}

// hasStrSpecial reports whether any byte of w is '"', '\\' or below 0x20
// (https://graphics.stanford.edu/~seander/bithacks.html#HasLessInWord and
// #ValueInWord; exact for whether, which is all that is asked).
func hasStrSpecial(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, bs := w^(ones*'"'), w^(ones*'\\') // zero bytes where w has '"' or '\\'
	return ((w-ones*0x20)&^w|(q-ones)&^q|(bs-ones)&^bs)&highs != 0
}

// hex4 decodes the four hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// unquote checks the string whose opening '"' is at d[i], as str does, and
// decodes it in the same pass. Its text is a slice of d if it holds no
// escapes, else buf[:0] with the decoded text appended; unquote returns buf,
// grown, for reuse. Escapes are decoded as encoding/json does: a \u surrogate
// pair is one rune, a surrogate that is not half of a pair is U+FFFD. Other
// bytes are kept as they are.
func unquote(buf, d []byte, i int) (text, buf2 []byte, end int, err error) {
	j := i + 1
	seg := j // start of the bytes not yet appended to buf
	escaped := false
	for {
		for j+8 <= len(d) && !hasStrSpecial(binary.LittleEndian.Uint64(d[j:])) {
			j += 8
		}
		for j < len(d) && strPlain[d[j]] {
			j++
		}
		if j >= len(d) {
			return nil, buf, j, &scanError{off: i, msg: "unterminated string"}
		}
		c := d[j]
		if c == '"' {
			if !escaped {
				return d[i+1 : j], buf, j + 1, nil
			}
			buf = append(buf, d[seg:j]...)
			return buf, buf, j + 1, nil
		}
		if c != '\\' {
			return nil, buf, j, &scanError{off: j, msg: fmt.Sprintf("control character 0x%02x in string", c)}
		}
		if !escaped {
			escaped = true
			buf = buf[:0]
		}
		buf = append(buf, d[seg:j]...)
		if j+1 >= len(d) {
			return nil, buf, j, &scanError{off: i, msg: "unterminated string"}
		}
		switch e := d[j+1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := hex4(d[j+2:])
			if !ok {
				return nil, buf, j, &scanError{off: j, msg: `invalid \u escape in string`}
			}
			if utf16.IsSurrogate(r) {
				dec := utf8.RuneError
				if k := j + 6; k+1 < len(d) && d[k] == '\\' && d[k+1] == 'u' {
					r2, ok := hex4(d[k+2:])
					if !ok {
						return nil, buf, k, &scanError{off: k, msg: `invalid \u escape in string`}
					}
					if dec = utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						j += 6 // the pair's second half
					}
				}
				r = dec
			}
			buf = utf8.AppendRune(buf, r)
			j += 4
		default:
			return nil, buf, j, &scanError{off: j, msg: "invalid escape " + quote(d[j:j+2]) + " in string"}
		}
		j += 2
		seg = j
	}
}

// appendValidUTF8 appends b to dst with each byte that is not part of a UTF-8
// sequence replaced by U+FFFD, as encoding/json decodes strings.
func appendValidUTF8(dst, b []byte) []byte {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, b[:n]...)
		}
		b = b[n:]
	}
	return dst
}
