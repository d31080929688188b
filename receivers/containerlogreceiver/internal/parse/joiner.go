package parse

import (
	"regexp"
	"unicode/utf8"
)

// Joiner joins the lines of multi-line records, such as stack traces: a line
// that matches start begins a new record, any other is appended, after a
// '\n', to the current one. A record is cut at maxLines lines or maxBytes
// bytes (separators included): the line that would pass a limit begins a new
// record instead. A single line longer than maxBytes is cut to maxBytes (at a
// UTF-8 boundary when there is one in its last three bytes) and the rest
// dropped. Stats counts both. Its buffers are reused: after the first records
// it does not allocate (the start regexp may, see regexp's docs).
//
// A Joiner is not safe for concurrent use: one belongs to one file.
type Joiner struct {
	start    *regexp.Regexp
	maxLines int
	maxBytes int

	cur     []byte // the pending record
	lines   int    // lines in cur
	pending bool   // whether cur holds a record (it may be empty)
	out     []byte // the record last returned; reused as cur after
	stats   JoinerStats
}

// JoinerStats counts what a Joiner's limits did since NewJoiner.
type JoinerStats struct {
	// Split counts records ended early because the next line would have
	// passed maxLines or maxBytes; that line began a new record.
	Split uint64
	// Truncated counts lines longer than maxBytes, cut to maxBytes;
	// TruncatedBytes the bytes dropped from them.
	Truncated, TruncatedBytes uint64
}

// NewJoiner returns a Joiner of records that begin at lines matching start.
// A nil start makes every line a record of its own. maxLines and maxBytes
// below 1 are taken as 1 (the receiver's config validation should refuse
// them).
func NewJoiner(start *regexp.Regexp, maxLines, maxBytes int) *Joiner {
	return &Joiner{start: start, maxLines: max(maxLines, 1), maxBytes: max(maxBytes, 1)}
}

// Add takes one logical line (partial lines already put together). If the
// line completes the pending record, Add returns that record, valid until the
// next call to Add or Flush, and true. The line itself is copied.
func (j *Joiner) Add(line []byte) (record []byte, ok bool) {
	if len(line) > j.maxBytes {
		cut := j.maxBytes
		for k := cut; k > 0 && k > cut-utf8.UTFMax; k-- {
			if utf8.RuneStart(line[k]) {
				cut = k
				break
			}
		}
		j.stats.Truncated++
		j.stats.TruncatedBytes += uint64(len(line) - cut)
		line = line[:cut]
	}
	if !j.pending {
		j.begin(line)
		return nil, false
	}
	if j.start == nil || j.start.Match(line) {
		return j.emitAndBegin(line), true
	}
	if j.lines >= j.maxLines || len(j.cur)+1+len(line) > j.maxBytes {
		j.stats.Split++
		return j.emitAndBegin(line), true
	}
	j.cur = append(j.cur, '\n')
	j.cur = append(j.cur, line...)
	j.lines++
	return nil, false
}

// Flush returns the pending record, if there is one, valid until the next
// call to Add or Flush. The caller flushes when the file has been idle for a
// while and at shutdown.
func (j *Joiner) Flush() (record []byte, ok bool) {
	if !j.pending {
		return nil, false
	}
	j.pending = false
	j.out, j.cur = j.cur, j.out[:0]
	j.lines = 0
	return j.out, true
}

// Shrink drops the Joiner's buffers over keep bytes, so that one long
// record does not pin its size: the record last returned (invalid after
// it), and the pending record's buffer while none is pending.
func (j *Joiner) Shrink(keep int) {
	if cap(j.out) > keep {
		j.out = nil
	}
	if !j.pending && cap(j.cur) > keep {
		j.cur = nil
	}
}

// Stats returns the counts of what the limits did since NewJoiner.
func (j *Joiner) Stats() JoinerStats {
	return j.stats
}

func (j *Joiner) begin(line []byte) {
	j.cur = append(j.cur[:0], line...)
	j.lines = 1
	j.pending = true
}

func (j *Joiner) emitAndBegin(line []byte) []byte {
	j.out, j.cur = j.cur, j.out[:0]
	j.begin(line)
	return j.out
}
