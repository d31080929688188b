package parse

import "strconv"

// maxQuoted caps the input bytes an error message quotes, so that a 1 MB
// line does not become a 1 MB error (and log line) of its own.
const maxQuoted = 32

// quote returns at most maxQuoted bytes of b, Go-quoted, for error messages.
func quote(b []byte) string {
	if len(b) > maxQuoted {
		return strconv.Quote(string(b[:maxQuoted])) + "..."
	}
	return strconv.Quote(string(b))
}

// quoteByte returns c quoted as a Go character literal, for error messages.
func quoteByte(c byte) string {
	return strconv.QuoteRune(rune(c))
}
