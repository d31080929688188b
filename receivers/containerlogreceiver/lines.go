package containerlogreceiver

import (
	"bytes"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/vigilhq/vigil/receivers/containerlogreceiver/internal/parse"
)

// The per-line state machine: a read's bytes cut into lines, each parsed in
// its runtime's format, partial lines merged, multi-line records joined,
// records cut at max_log_size and added to the batch.

// consume splits data (read at rd.offset) into lines and handles each.
func (r *logReceiver) consume(rd *reader, data []byte) {
	rd.noteFingerprint(data, rd.offset)
	start := rd.offset
	rd.offset += int64(len(data))
	if len(rd.carry) > 0 {
		// Only the carried line's end joins it: the rest of the read is
		// cut where it lies, not copied.
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			rd.carry = append(rd.carry, data[:i+1]...)
			r.lines(rd, rd.carry, rd.carryStart)
			rd.carry = emptied(rd.carry)
			data, start = data[i+1:], start+int64(i)+1
		} else {
			rd.carry = append(rd.carry, data...)
			data, start = rd.carry, rd.carryStart
		}
	}
	data, start = r.lines(rd, data, start)
	// A line longer than any runtime writes (no newline within
	// max_log_size plus a header): its header is parsed from its first
	// piece, and the rest is content of the same record, sent in
	// max_log_size pieces.
	if limit := int(r.cfg.MaxLogSize) + 4<<10; len(data) > limit {
		r.longPiece(rd, data[:limit], start)
		data, start = data[limit:], start+int64(limit)
	}
	if len(data) == 0 {
		rd.carry = emptied(rd.carry)
		return
	}
	if cap(rd.carry) > keepCap && len(data) <= keepCap {
		// A long line is over: its buffer is not kept for a short one.
		rd.carry = append([]byte(nil), data...)
	} else {
		// data may be the tail of carry itself: append copies with memmove.
		rd.carry = append(rd.carry[:0], data...)
	}
	rd.carryStart = start
}

// lines handles every complete line of data (read at start) and returns
// what follows the last newline, and where.
func (r *logReceiver) lines(rd *reader, data []byte, start int64) ([]byte, int64) {
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return data, start
		}
		if rd.long {
			// The end of a line longer than any runtime writes.
			rd.long = false
			r.complete(rd, rd.longStream, 0, bytes.TrimSuffix(data[:i], []byte{'\r'}), start)
			r.settle(rd, start+int64(i)+1)
		} else {
			r.handleLine(rd, data[:i], start, start+int64(i)+1)
		}
		data, start = data[i+1:], start+int64(i)+1
	}
}

// longPiece takes a piece of a line longer than the limit, its newline not
// read yet.
func (r *logReceiver) longPiece(rd *reader, piece []byte, start int64) {
	if !rd.long {
		rd.long, rd.longStream = true, 0
		if rd.format == 0 {
			rd.format = parse.Detect(piece)
		}
		if rd.format == parse.FormatCRI {
			if l, err := parse.CRI(piece); err == nil {
				rd.longStream = l.Stream
				r.appendPartial(rd, l.Stream, l.Time, l.Content, start)
				return
			}
		}
		r.tel.parseFailed.Add(1) // a Docker line is JSON: cut, it is not
	}
	r.appendPartial(rd, rd.longStream, 0, piece, start)
}

// handleLine parses one physical line [start, end) of rd.
func (r *logReceiver) handleLine(rd *reader, line []byte, start, end int64) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) == 0 {
		r.tel.skipped.Add(1)
		rd.updateSafe(end)
		return
	}
	if rd.format == 0 {
		rd.format = parse.Detect(line)
	}
	var l parse.Line
	var err error
	if rd.format == parse.FormatDocker {
		l, r.scratch, err = parse.Docker(line, r.scratch)
	} else {
		l, err = parse.CRI(line)
	}
	if err != nil {
		// Kept whole as the body: nothing is dropped for its shape.
		r.tel.parseFailed.Add(1)
		r.set.Logger.Debug("A line of neither runtime format", zap.String("path", rd.path), zap.Int64("offset", start), zap.Error(err))
		r.emit(rd, 0, 0, line)
		rd.updateSafe(end)
		return
	}
	if l.Partial {
		r.appendPartial(rd, l.Stream, l.Time, l.Content, start)
	} else {
		r.complete(rd, l.Stream, l.Time, l.Content, start)
	}
	r.settle(rd, end)
}

// appendPartial adds a piece of a line the runtime split (or of a line
// longer than any it writes) to its stream's record in progress, sending
// it in max_log_size pieces.
func (r *logReceiver) appendPartial(rd *reader, stream parse.Stream, t int64, content []byte, start int64) {
	s := &rd.streams[stream]
	if s.pStart < 0 {
		s.pStart, s.pTime = start, t
	}
	s.partial = append(s.partial, content...)
	for max := int(r.cfg.MaxLogSize); len(s.partial) >= max; {
		r.tel.split.Add(1)
		r.record(rd, stream, s.pTime, s.partial[:max], start)
		s.partial = append(s.partial[:0], s.partial[max:]...)
	}
}

// complete ends a stream's line with its last piece.
func (r *logReceiver) complete(rd *reader, stream parse.Stream, t int64, content []byte, start int64) {
	s := &rd.streams[stream]
	recStart := start
	if s.pStart >= 0 {
		s.partial = append(s.partial, content...)
		content, t, recStart = s.partial, s.pTime, s.pStart
		s.pStart = -1
	}
	r.record(rd, stream, t, content, recStart)
	s.partial = emptied(s.partial)
}

// keepCap is the largest per-file buffer kept for reuse once it is empty:
// a rare long line must not pin its size for as long as its file is read.
const keepCap = 64 << 10

// emptied returns b emptied for reuse, or nil when it is over keepCap.
func emptied(b []byte) []byte {
	if cap(b) > keepCap {
		return nil
	}
	return b[:0]
}

// settle moves the safe offset to end, unless a record is in progress;
// one that has been in progress for more than batch_size bytes of the file
// (a partial line whose end never came, a stream interleaved with a busy
// one) is sent as it is, so that a restart never reads more than that
// again.
func (r *logReceiver) settle(rd *reader, end int64) {
	for i := range rd.streams {
		s := &rd.streams[i]
		if (s.pStart >= 0 && end-s.pStart > int64(r.cfg.BatchSize)) ||
			(s.jStart >= 0 && end-s.jStart > int64(r.cfg.BatchSize)) {
			r.flushStream(rd, parse.Stream(i), end)
		}
	}
	rd.updateSafe(end)
}

// record takes one logical line of a stream: joined with its record's
// other lines when multiline is on, else sent as it is.
func (r *logReceiver) record(rd *reader, stream parse.Stream, t int64, content []byte, start int64) {
	s := &rd.streams[stream]
	if s.joiner == nil {
		r.emit(rd, stream, t, content)
		return
	}
	if len(content) > int(r.cfg.MaxLogSize) {
		// Longer than a joined record may be: the record before it is
		// sent, and it goes on its own, in pieces.
		r.flushStream(rd, stream, start)
		r.emit(rd, stream, t, content)
		return
	}
	if rec, ok := s.joiner.Add(content); ok {
		r.emit(rd, stream, s.jTime, rec)
		s.joiner.Shrink(keepCap)
		s.jStart, s.jTime = start, t
	} else if s.jStart < 0 {
		s.jStart, s.jTime = start, t
	}
}

// flushStream sends what a stream holds in progress.
func (r *logReceiver) flushStream(rd *reader, stream parse.Stream, end int64) {
	s := &rd.streams[stream]
	if s.pStart >= 0 {
		r.record(rd, stream, s.pTime, s.partial, s.pStart)
		s.partial, s.pStart = emptied(s.partial), -1
	}
	if s.joiner != nil && s.jStart >= 0 {
		if rec, ok := s.joiner.Flush(); ok {
			r.emit(rd, stream, s.jTime, rec)
		}
		s.joiner.Shrink(keepCap)
		s.jStart = -1
	}
	rd.updateSafe(end)
}

// flushIdle sends the multi-line records of files with no new line for
// flush_after.
func (r *logReceiver) flushIdle() {
	if r.joiner == nil {
		return
	}
	for _, rd := range r.readers {
		if time.Since(rd.lastData) < r.cfg.Multiline.FlushAfter || len(rd.carry) > 0 {
			continue
		}
		for i := range rd.streams {
			if rd.streams[i].jStart >= 0 {
				r.flushStream(rd, parse.Stream(i), rd.offset)
			}
		}
	}
}

// emit adds a record to the batch, cut into pieces over max_log_size.
func (r *logReceiver) emit(rd *reader, stream parse.Stream, t int64, body []byte) {
	for len(body) > int(r.cfg.MaxLogSize) {
		r.tel.split.Add(1)
		r.add(rd, stream, t, body[:r.cfg.MaxLogSize])
		body = body[r.cfg.MaxLogSize:]
	}
	r.add(rd, stream, t, body)
}

func (r *logReceiver) add(rd *reader, stream parse.Stream, t int64, body []byte) {
	if r.batch == nil {
		r.batch = newBatch()
	}
	rec := r.batch.record(rd)
	rec.SetObservedTimestamp(r.observed)
	if t > 0 {
		rec.SetTimestamp(pcommon.Timestamp(t))
	}
	r.batch.bytes += len(body)
	parsed := false
	if r.json != nil && len(body) > 0 && body[0] == '{' {
		if err := r.json.Parse(body, r.keys, rec); err == nil {
			parsed = true
		} else {
			r.tel.parseFailed.Add(1)
		}
	}
	// After the body's own keys: the file's say where the line came from.
	rec.Attributes().EnsureCapacity(rec.Attributes().Len() + 2)
	if stream != 0 {
		rec.Attributes().PutStr("log.iostream", stream.String())
	}
	rec.Attributes().PutStr("log.file.path", rd.path)
	if parsed && rec.Body().Type() != pcommon.ValueTypeEmpty {
		return
	}
	// The line is the body: not JSON, or JSON without a message key (as
	// upstream's json_parser with parse_to: attributes leaves it).
	if utf8.Valid(body) {
		rec.Body().SetStr(string(body))
	} else {
		// OTLP strings are UTF-8; a backend may refuse a whole request
		// for one invalid byte.
		rec.Body().SetStr(strings.ToValidUTF8(string(body), "\uFFFD"))
	}
}
