package parse

import "fmt"

// ParseTime parses an RFC 3339 time, with or without fractional seconds
// (as the runtimes write it: containerd time.RFC3339Nano, CRI-O nine digits
// and a local offset, Docker time.RFC3339Nano in UTC), to unix nanoseconds,
// without allocating unless it returns an error. Digits past the ninth are
// truncated, as time.Parse does. It is strict where time.Parse is not (see
// https://go.dev/issue/54580): two-digit fields, '.' before the fraction,
// offsets below 24:00. Times outside what int64 nanoseconds hold (1677-09-21
// to 2262-04-11) are an error.
func ParseTime(b []byte) (int64, error) {
	ns, msg, off := parseRFC3339(b)
	if msg != "" {
		return 0, fmt.Errorf("cannot parse time %s: %s at byte %d", quote(b), msg, off)
	}
	return ns, nil
}

// parseRFC3339 parses YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM) with the
// checks of the time package's own fast path (parseRFC3339 in
// format_rfc3339.go). On failure it returns what is wrong and where.
func parseRFC3339(b []byte) (ns int64, msg string, off int) {
	if len(b) < len("2006-01-02T15:04:05") {
		return 0, "too short for RFC 3339", len(b)
	}
	for _, sep := range [...]struct {
		at int
		c  byte
	}{{4, '-'}, {7, '-'}, {10, 'T'}, {13, ':'}, {16, ':'}} {
		if b[sep.at] != sep.c {
			return 0, "expecting " + quoteByte(sep.c), sep.at
		}
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	switch {
	case !ok1:
		return 0, "bad year", 0
	case !ok2 || month < 1 || month > 12:
		return 0, "bad month", 5
	case !ok3 || day < 1 || day > daysIn(month, year):
		return 0, "bad day", 8
	case !ok4 || hour > 23:
		return 0, "bad hour", 11
	case !ok5 || minute > 59:
		return 0, "bad minute", 14
	case !ok6 || sec > 59:
		return 0, "bad second", 17
	}
	i := 19
	var nsec int64
	if i+1 < len(b) && b[i] == '.' && b[i+1] >= '0' && b[i+1] <= '9' {
		i++
		scale := int64(100_000_000)
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			nsec += int64(b[i]-'0') * scale
			scale /= 10
		}
	}
	var offset int64
	switch rest := b[i:]; {
	case len(rest) == 1 && rest[0] == 'Z':
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := digits(rest[1:3])
		om, okm := digits(rest[4:6])
		if !okh || !okm || oh > 23 || om > 59 {
			return 0, "bad offset", i
		}
		offset = int64(oh*60+om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, "expecting 'Z' or an offset like +01:00", i
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec) - offset
	ns, ok := unixNano(secs, nsec)
	if !ok {
		return 0, "out of the range of int64 nanoseconds", 0
	}
	return ns, "", 0
}

// unixNano returns secs seconds and nsec nanoseconds (0 <= nsec < 1e9) after
// the epoch in nanoseconds, and false if that overflows int64.
func unixNano(secs, nsec int64) (int64, bool) {
	const maxSecs = 9223372036 // math.MaxInt64 / 1e9
	switch {
	case secs < -maxSecs-1, secs > maxSecs, secs == maxSecs && nsec > 854775807:
		return 0, false
	case secs == -maxSecs-1: // secs*1e9 alone would overflow
		if nsec < 145224192 {
			return 0, false
		}
		return (secs+1)*1e9 + (nsec - 1e9), true
	}
	return secs*1e9 + nsec, true
}

// digits parses a short run of ASCII digits.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	default:
		return 31
	}
}

// daysFromCivil returns the days from 1970-01-01 to a proleptic Gregorian
// date (Howard Hinnant's days_from_civil, for years 0 to 9999).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
