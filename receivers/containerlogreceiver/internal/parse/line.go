package parse

import (
	"bytes"
	"errors"
	"fmt"
)

// Stream is the standard stream of a container that a line was written to.
type Stream uint8

// The streams a runtime names in its log files.
const (
	StreamStdout Stream = iota + 1
	StreamStderr
)

// String returns "stdout" or "stderr", the names the runtimes write (and the
// values of the log.iostream attribute), or "unknown" for the zero Stream.
func (s Stream) String() string {
	switch s {
	case StreamStdout:
		return "stdout"
	case StreamStderr:
		return "stderr"
	default:
		return "unknown"
	}
}

// Format is the layout of a container log file.
type Format uint8

// The formats of the files under /var/log/pods.
const (
	// FormatCRI is "<RFC3339Nano time> <stdout|stderr> <P|F> <content>",
	// written by containerd and CRI-O.
	FormatCRI Format = iota + 1
	// FormatDocker is Docker's json-file driver (cri-dockerd):
	// {"log":"...\n","stream":"stdout","time":"2024-...Z"}.
	FormatDocker
)

// String returns "cri", "docker" or "unknown".
func (f Format) String() string {
	switch f {
	case FormatCRI:
		return "cri"
	case FormatDocker:
		return "docker"
	default:
		return "unknown"
	}
}

// Detect returns the format of a file from one of its lines: a line starting
// with '{' is Docker, any other CRI (whose lines start with a digit).
func Detect(line []byte) Format {
	if len(line) > 0 && line[0] == '{' {
		return FormatDocker
	}
	return FormatCRI
}

// Line is one line of a container log file as the runtime wrote it.
type Line struct {
	// Time is when the runtime read the line from the container, in unix
	// nanoseconds.
	Time int64
	// Stream is the container's stream the line came from.
	Stream Stream
	// Partial is set when more of the same logical line follows in the next
	// line of the file: the CRI tag "P", or a Docker "log" not ending in
	// '\n'. Runtimes split long lines: Docker and containerd at 16 KiB by
	// default, CRI-O at its conmon's 8 KiB read buffer.
	Partial bool
	// Content is the line's text without the trailing newline. It aliases the
	// input (CRI) or the scratch buffer (Docker), and may hold any bytes,
	// including invalid UTF-8: it is what the container wrote.
	Content []byte
}

// CRI parses one line of a CRI log file (without its trailing '\n'):
// "<time> <stream> <tag> <content>". The time is RFC 3339 with nanoseconds
// (containerd trims trailing zeros, CRI-O writes nine digits and may write a
// local offset); the stream is stdout or stderr; the tag is P (partial) or F
// (full), optionally followed by ':' and more tags, which are ignored as the
// kubelet does. Content is everything after the single space following the
// tag, and may be empty (a line ending in the tag is accepted as empty
// content). Line.Content aliases line. On error the Line is zero. CRI does
// not allocate unless it returns an error.
func CRI(line []byte) (Line, error) {
	var l Line
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return Line{}, fmt.Errorf("cannot parse CRI line %s: no space after the time", quote(line))
	}
	t, err := ParseTime(line[:sp])
	if err != nil {
		return Line{}, fmt.Errorf("cannot parse CRI line: time at byte 0: %w", err)
	}
	l.Time = t

	off := sp + 1
	rest := line[off:]
	sp = bytes.IndexByte(rest, ' ')
	if sp < 0 {
		return Line{}, fmt.Errorf("cannot parse CRI line: no tag after the stream at byte %d", off)
	}
	switch string(rest[:sp]) {
	case "stdout":
		l.Stream = StreamStdout
	case "stderr":
		l.Stream = StreamStderr
	default:
		return Line{}, fmt.Errorf("cannot parse CRI line: stream %s at byte %d is neither stdout nor stderr", quote(rest[:sp]), off)
	}

	off += sp + 1
	rest = rest[sp+1:]
	tag := rest
	sp = bytes.IndexByte(rest, ' ')
	if sp >= 0 {
		tag = rest[:sp]
		l.Content = rest[sp+1:]
	} else {
		l.Content = rest[len(rest):]
	}
	// The tag is "P" or "F", then possibly ":more" (kubelet's
	// pkg/kubelet/kuberuntime/logs splits tags on ':' and reads the first).
	if len(tag) == 0 || (tag[0] != 'P' && tag[0] != 'F') || (len(tag) > 1 && tag[1] != ':') {
		return Line{}, fmt.Errorf("cannot parse CRI line: tag %s at byte %d is neither P nor F", quote(tag), off)
	}
	l.Partial = tag[0] == 'P'
	return l, nil
}

// Docker parses one line of a Docker json-file log:
// {"log":"...\n","stream":"stdout","time":"2024-01-15T10:30:00.123456789Z"},
// possibly with other keys (such as "attrs", from --log-opt labels), which
// are skipped. All three keys are required. "log" is decoded into
// scratch[:0], whose grown version is returned for the next call (also with
// an error, when the Line is zero); Line.Content aliases it. Docker writes
// the "log" of a line longer than 16 KiB in several entries, all but the
// last without the final '\n': those are Partial. Escapes are decoded as
// encoding/json does (a lone surrogate becomes U+FFFD); bytes that are not
// UTF-8 are kept as they are. Other keys' values are checked as JSON (within
// DefaultJSONMaxDepth and DefaultJSONMaxValues), not decoded. Docker does not
// allocate once scratch is large enough, unless it returns an error.
func Docker(line []byte, scratch []byte) (Line, []byte, error) {
	var l Line
	scratch = scratch[:0]
	s := jsonScanner{data: line, maxDepth: DefaultJSONMaxDepth, maxValues: DefaultJSONMaxValues}
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return Line{}, scratch, dockerError(s.errAt(i, "expecting '{'"))
	}
	var haveLog, haveStream, haveTime bool
	i = skipWS(line, i+1)
	if i < len(line) && line[i] == '}' {
		return Line{}, scratch, errors.New(`cannot parse Docker line: missing "log"`)
	}
	for {
		if i >= len(line) || line[i] != '"' {
			return Line{}, scratch, dockerError(s.errAt(i, "expecting '\"' to begin a key"))
		}
		var keyBuf [8]byte // for a key with escapes, which no runtime writes
		key, _, keyEnd, err := unquote(keyBuf[:0], line, i)
		if err != nil {
			return Line{}, scratch, dockerError(err)
		}
		i = skipWS(line, keyEnd)
		if i >= len(line) || line[i] != ':' {
			return Line{}, scratch, dockerError(s.errAt(i, "expecting ':' after a key"))
		}
		i = skipWS(line, i+1)
		switch string(key) {
		case "log", "stream", "time":
			if i >= len(line) || line[i] != '"' {
				name := "time" // not key itself: it would move keyBuf to the heap
				switch key[0] {
				case 'l':
					name = "log"
				case 's':
					name = "stream"
				}
				return Line{}, scratch, fmt.Errorf("cannot parse Docker line: %q at byte %d is not a string", name, i)
			}
			if key[0] == 'l' {
				var text []byte
				var end int
				// scratch becomes the decoded text if it had escapes; if not,
				// text is a slice of line, copied for Content to alias scratch.
				if text, scratch, end, err = unquote(scratch[:0], line, i); err != nil {
					return Line{}, scratch, dockerError(err)
				}
				if len(text) > 0 && &text[0] == &line[i+1] {
					scratch = append(scratch[:0], text...)
				}
				haveLog = true
				i = end
				break
			}
			var buf [64]byte // for "stream" and "time" with escapes, which no runtime writes
			raw, _, end, err := unquote(buf[:0], line, i)
			if err != nil {
				return Line{}, scratch, dockerError(err)
			}
			switch key[0] {
			case 's':
				haveStream = true
				switch string(raw) {
				case "stdout":
					l.Stream = StreamStdout
				case "stderr":
					l.Stream = StreamStderr
				default:
					return Line{}, scratch, fmt.Errorf("cannot parse Docker line: stream %s at byte %d is neither stdout nor stderr", quote(raw), i)
				}
			default:
				haveTime = true
				if l.Time, err = ParseTime(raw); err != nil {
					return Line{}, scratch, fmt.Errorf("cannot parse Docker line: time at byte %d: %w", i, err)
				}
			}
			i = end
		default:
			if i, err = s.value(i, 1); err != nil {
				return Line{}, scratch, dockerError(err)
			}
		}
		i = skipWS(line, i)
		if i < len(line) && line[i] == ',' {
			i = skipWS(line, i+1)
			continue
		}
		if i < len(line) && line[i] == '}' {
			break
		}
		return Line{}, scratch, dockerError(s.errAt(i, "expecting ',' or '}' after a value"))
	}
	if i = skipWS(line, i+1); i < len(line) {
		return Line{}, scratch, dockerError(s.errAt(i, "unexpected data after the object"))
	}
	switch {
	case !haveLog:
		return Line{}, scratch, errors.New(`cannot parse Docker line: missing "log"`)
	case !haveStream:
		return Line{}, scratch, errors.New(`cannot parse Docker line: missing "stream"`)
	case !haveTime:
		return Line{}, scratch, errors.New(`cannot parse Docker line: missing "time"`)
	}
	l.Content = scratch
	if n := len(scratch); n > 0 && scratch[n-1] == '\n' {
		l.Content = scratch[:n-1]
	} else {
		l.Partial = true
	}
	return l, scratch, nil
}

func dockerError(err error) error {
	return fmt.Errorf("cannot parse Docker line: %w", err)
}
