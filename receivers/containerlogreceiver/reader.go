package containerlogreceiver

import (
	"bytes"
	"os"
	"time"

	"github.com/vigilhq/vigil/receivers/containerlogreceiver/internal/parse"
)

// fileKey identifies a file across renames: the kubelet rotates a log by
// renaming it, so the path changes and the inode stays.
type fileKey struct{ dev, ino uint64 }

// fingerprintSize is how many of a file's first bytes identify it with its
// inode: an inode number reused by a new file has other first bytes.
const fingerprintSize = 64

// reader is the state of one file.
type reader struct {
	key  fileKey
	path string
	pod  parse.PodPath
	f    *os.File // nil while closed (idle, over max_open_files)
	fp   []byte   // the file's first bytes, up to fingerprintSize

	offset int64     // next byte to read
	size   int64     // the size seen at the last poll
	mtime  time.Time // and the modification time
	// safe is the end of the last line handled with nothing pending
	// before it: where a restart may resume without losing a record.
	safe  int64
	acked int64 // the offset the pipeline took, checkpointed

	carry      []byte // an incomplete line at the end of the last read
	carryStart int64

	format parse.Format // from the first line
	// long: inside a line longer than any runtime writes, of longStream.
	long       bool
	longStream parse.Stream
	streams    [3]streamState
	lastData   time.Time
	gen        uint64 // the poll that last found it at a matched path
	unmatched  int    // polls since then, while read to its end
}

// streamState holds a stream's record in progress: CRI/Docker partial
// lines merged, and the multi-line record being joined.
type streamState struct {
	partial []byte
	pStart  int64 // offset where the partial line began; -1: none
	pTime   int64
	joiner  *parse.Joiner
	jStart  int64 // offset where the joined record began; -1: none
	jTime   int64
}

func newReader(key fileKey, path string, joiner func() *parse.Joiner) *reader {
	r := &reader{key: key, path: path}
	r.pod, _ = parse.ParsePodPath(path)
	for i := range r.streams {
		r.streams[i].pStart, r.streams[i].jStart = -1, -1
		if joiner != nil {
			r.streams[i].joiner = joiner()
		}
	}
	return r
}

// updateSafe sets safe to end, or to the start of the earliest record
// still in progress.
func (r *reader) updateSafe(end int64) {
	safe := end
	for i := range r.streams {
		s := &r.streams[i]
		if s.pStart >= 0 && s.pStart < safe {
			safe = s.pStart
		}
		if s.jStart >= 0 && s.jStart < safe {
			safe = s.jStart
		}
	}
	r.safe = safe
}

// reset forgets what was read: the file was truncated.
func (r *reader) reset() {
	// acked -1: the next commit writes the new offset, whatever it is.
	r.offset, r.safe, r.acked = 0, 0, -1
	r.carry, r.long = r.carry[:0], false
	r.fp = r.fp[:0]
	for i := range r.streams {
		s := &r.streams[i]
		s.partial, s.pStart, s.jStart = s.partial[:0], -1, -1
		if s.joiner != nil {
			s.joiner.Flush()
		}
	}
}

// noteFingerprint keeps the file's first bytes as they are read.
func (r *reader) noteFingerprint(data []byte, at int64) {
	if at >= fingerprintSize || int64(len(r.fp)) != at {
		return
	}
	n := min(fingerprintSize-len(r.fp), len(data))
	r.fp = append(r.fp, data[:n]...)
}

// matches reports whether a checkpointed fingerprint is this file's: the
// file only grows, so the stored bytes are a prefix of the current ones.
func matchesFingerprint(current, stored []byte) bool {
	return bytes.HasPrefix(current, stored)
}

func (r *reader) close() {
	if r.f != nil {
		_ = r.f.Close()
		r.f = nil
	}
}
