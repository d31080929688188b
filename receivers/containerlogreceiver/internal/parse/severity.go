package parse

import (
	"math"
	"strconv"

	"go.opentelemetry.io/collector/pdata/plog"
)

// severityNumber maps a level, a JSON string's text or a JSON number as
// written, to a SeverityNumber: see JSONParser.Parse for the table.
func severityNumber(text []byte) plog.SeverityNumber {
	if n, ok := parseInt(text); ok {
		return numericSeverity(n)
	}
	var lower [len("informational")]byte
	if len(text) > len(lower) {
		return plog.SeverityNumberUnspecified
	}
	for i, c := range text {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	switch string(lower[:len(text)]) {
	case "trace":
		return plog.SeverityNumberTrace
	case "debug", "dbg":
		return plog.SeverityNumberDebug
	case "info", "information", "informational":
		return plog.SeverityNumberInfo
	case "notice":
		return plog.SeverityNumberInfo2
	case "warn", "warning":
		return plog.SeverityNumberWarn
	case "error", "err":
		return plog.SeverityNumberError
	case "critical", "crit", "dpanic":
		return plog.SeverityNumberError2
	case "alert", "panic":
		return plog.SeverityNumberError3
	case "fatal", "emergency", "emerg":
		return plog.SeverityNumberFatal
	}
	return plog.SeverityNumberUnspecified
}

func numericSeverity(n int64) plog.SeverityNumber {
	switch n {
	case 0:
		return plog.SeverityNumberFatal
	case 1:
		return plog.SeverityNumberError3
	case 2:
		return plog.SeverityNumberError2
	case 3, 50:
		return plog.SeverityNumberError
	case 4, 40:
		return plog.SeverityNumberWarn
	case 5:
		return plog.SeverityNumberInfo2
	case 6, 30:
		return plog.SeverityNumberInfo
	case 7, 20:
		return plog.SeverityNumberDebug
	case 10:
		return plog.SeverityNumberTrace
	case 60:
		return plog.SeverityNumberFatal
	}
	return plog.SeverityNumberUnspecified
}

// Magnitudes that tell epoch units apart in epochNanos: 1e10 seconds,
// milliseconds, microseconds or nanoseconds since the epoch is 2286-11-20 in
// the unit below it and 1970-04-26 in its own, so each unit reads every time
// from 1970-04-26 to 2262-04-11 (the end of int64 nanoseconds) unambiguously.
const (
	epochSecondsBelow = 1e10
	epochMillisBelow  = 1e13
	epochMicrosBelow  = 1e16
)

// epochNanos converts a checked JSON number of time since the epoch to
// nanoseconds: below 1e10 it is seconds, below 1e13 milliseconds, below 1e16
// microseconds, else nanoseconds. A fraction is kept to the nanosecond, read
// as decimal digits, not through a float64. It returns false for a number
// that is not positive or is beyond int64 nanoseconds.
func epochNanos(num []byte) (int64, bool) {
	if len(num) == 0 || num[0] == '-' {
		return 0, false
	}
	intLen := skipDigits(num, 0)
	intPart, frac := num[:intLen], num[intLen:]
	if len(frac) > 0 && frac[0] == '.' {
		frac = frac[1:]
	}
	if len(intPart) > 19 || skipDigits(frac, 0) != len(frac) {
		return epochNanosFloat(num) // an exponent, or too many digits
	}
	n, _ := digitsU64(intPart)
	scale := uint64(1)
	switch {
	case n < epochSecondsBelow:
		scale = 1e9
	case n < epochMillisBelow:
		scale = 1e6
	case n < epochMicrosBelow:
		scale = 1e3
	}
	if n > math.MaxInt64/scale {
		return 0, false
	}
	ns := n * scale
	for s := scale / 10; s > 0 && len(frac) > 0; s /= 10 {
		ns += uint64(frac[0]-'0') * s
		frac = frac[1:]
	}
	if ns == 0 || ns > math.MaxInt64 {
		return 0, false
	}
	return int64(ns), true
}

func epochNanosFloat(num []byte) (int64, bool) {
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil || !(f > 0) {
		return 0, false
	}
	switch {
	case f < epochSecondsBelow:
		f *= 1e9
	case f < epochMillisBelow:
		f *= 1e6
	case f < epochMicrosBelow:
		f *= 1e3
	}
	if f >= math.MaxInt64 || f < 1 {
		return 0, false
	}
	return int64(f), true
}

func digitsU64(b []byte) (uint64, bool) {
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
