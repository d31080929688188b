// Package crilog writes container log files the way the kubelet lays them out
// with a CRI runtime (containerd, CRI-O): one directory per pod under
// <root>/<namespace>_<pod>_<uid>/<container>/0.log, each line
// "<RFC3339Nano time> stdout F <message>", with the message a JSON object
// padded to a fixed line size, at a fixed rate, with size-based rotation
// (0.log renamed to 0.log.<timestamp>, only the newest rotated files kept).
package crilog

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"time"
)

// Config says what to write.
type Config struct {
	// Root is the pods directory (the kubelet's /var/log/pods).
	Root string
	// Pods is the number of containers writing (4).
	Pods int
	// LineBytes is the size of each line, newline included (1024).
	LineBytes int
	// Rate is the total lines per second over all pods.
	Rate float64
	// RotateBytes rotates a file when it reaches this size (64 MiB).
	RotateBytes int64
	// KeepRotated is how many rotated files a container keeps (2).
	KeepRotated int
}

// Writer writes log lines until its context ends. Counters are safe to read
// at any time.
type Writer struct {
	cfg Config
	// Lines and Bytes count what was written; Rotations the rotations done.
	Lines, Bytes, Rotations atomic.Int64
	// Paths are the live files, one per pod.
	Paths []string
}

// tsLayout has a fixed width, so a timestamp is patched in place.
const tsLayout = "2006-01-02T15:04:05.000000000Z"

// New creates the pod directories.
func New(cfg Config) (*Writer, error) {
	if cfg.Pods <= 0 {
		cfg.Pods = 4
	}
	if cfg.LineBytes <= 0 {
		cfg.LineBytes = 1024
	}
	if cfg.RotateBytes <= 0 {
		cfg.RotateBytes = 64 << 20
	}
	if cfg.KeepRotated <= 0 {
		cfg.KeepRotated = 2
	}
	if cfg.Rate <= 0 {
		return nil, fmt.Errorf("crilog: rate must be > 0, got %v", cfg.Rate)
	}
	if cfg.LineBytes < 200 {
		return nil, fmt.Errorf("crilog: line size must be at least 200 bytes, got %d", cfg.LineBytes)
	}
	w := &Writer{cfg: cfg}
	apps := []string{"checkout", "payment", "frontend", "cart", "inventory", "search"}
	for i := 0; i < cfg.Pods; i++ {
		app := apps[i%len(apps)]
		pod := fmt.Sprintf("shop_%s-7d4f8b9c-%05x_%08x-1f2e-4d3c-9b8a-%012x", app, i*7919%0xfffff, i, i)
		dir := filepath.Join(cfg.Root, pod, app)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("crilog: cannot create %s: %w", dir, err)
		}
		w.Paths = append(w.Paths, filepath.Join(dir, "0.log"))
	}
	return w, nil
}

// lines renders n distinct lines of exactly size bytes. The timestamp at the
// start of each is patched when it is written.
func lines(rng *rand.Rand, n, size int) [][]byte {
	levels := []string{"info", "info", "info", "debug", "warn", "error"}
	msgs := []string{"request completed", "order placed", "cache miss", "payment authorized", "retrying upstream call", "connection reset by peer"}
	out := make([][]byte, n)
	for i := range out {
		lvl := levels[rng.IntN(len(levels))]
		json := fmt.Sprintf(`{"level":%q,"ts":"2025-11-26T08:52:18.123Z","logger":"http","msg":%q,"trace_id":"%016x%016x","span_id":"%016x","method":"GET","path":"/api/orders/%d","status":%d,"duration_ms":%d,"user_id":"u-%d","bytes":%d,"pad":"`,
			lvl, msgs[rng.IntN(len(msgs))], rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.IntN(1e6), 200+rng.IntN(4)*100, rng.IntN(900), rng.IntN(1e5), rng.IntN(1e5))
		head := tsLayout + " stdout F "
		pad := size - len(head) - len(json) - len(`"}`) - 1
		b := make([]byte, 0, size)
		b = append(b, head...)
		b = append(b, json...)
		for j := 0; j < pad; j++ {
			b = append(b, 'a'+byte((i+j)%26))
		}
		b = append(b, `"}`...)
		b = append(b, '\n')
		out[i] = b
	}
	return out
}

// Run writes at the configured rate until ctx is done, in ticks of 10 ms.
func (w *Writer) Run(ctx context.Context) error {
	rng := rand.New(rand.NewPCG(1, 2))
	tmpl := lines(rng, 64, w.cfg.LineBytes)
	files := make([]*file, len(w.Paths))
	for i, p := range w.Paths {
		f, err := openFile(p)
		if err != nil {
			return err
		}
		files[i] = f
	}
	defer func() {
		for _, f := range files {
			f.close()
		}
	}()
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	var written int64
	line := make([]byte, w.cfg.LineBytes)
	for k := 0; ; k++ {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			due := int64(w.cfg.Rate * now.Sub(start).Seconds())
			ts := now.UTC().AppendFormat(nil, tsLayout)
			for ; written < due; written++ {
				f := files[written%int64(len(files))]
				copy(line, tmpl[written%int64(len(tmpl))])
				copy(line, ts)
				if _, err := f.w.Write(line); err != nil {
					return fmt.Errorf("crilog: cannot write %s: %w", f.path, err)
				}
				f.size += int64(len(line))
				if f.size >= w.cfg.RotateBytes {
					if err := f.rotate(now, w.cfg.KeepRotated); err != nil {
						return err
					}
					w.Rotations.Add(1)
				}
			}
			for _, f := range files {
				if err := f.w.Flush(); err != nil {
					return fmt.Errorf("crilog: cannot write %s: %w", f.path, err)
				}
			}
			w.Lines.Store(written)
			w.Bytes.Store(written * int64(w.cfg.LineBytes))
		}
	}
}

type file struct {
	path string
	f    *os.File
	w    *bufio.Writer
	size int64
	seq  int
}

func openFile(path string) (*file, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("crilog: cannot open %s: %w", path, err)
	}
	return &file{path: path, f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

// rotate does what the kubelet does: rename the live file to
// 0.log.<yyyymmdd-hhmmss>, start a new one, and delete the oldest rotated
// files beyond keep.
func (f *file) rotate(now time.Time, keep int) error {
	if err := f.w.Flush(); err != nil {
		return err
	}
	f.f.Close()
	f.seq++
	// The kubelet's stamp has second resolution; a sequence keeps names unique
	// when a fast writer rotates twice in one second.
	rotated := f.path + "." + now.UTC().Format("20060102-150405") + "." + strconv.Itoa(f.seq)
	if err := os.Rename(f.path, rotated); err != nil {
		return fmt.Errorf("crilog: cannot rotate %s: %w", f.path, err)
	}
	old, _ := filepath.Glob(f.path + ".*")
	sort.Slice(old, func(i, j int) bool { return rotatedSeq(old[i]) < rotatedSeq(old[j]) })
	for len(old) > keep {
		_ = os.Remove(old[0])
		old = old[1:]
	}
	nf, err := openFile(f.path)
	if err != nil {
		return err
	}
	nf.seq = f.seq
	*f = *nf
	return nil
}

func rotatedSeq(p string) int {
	n, _ := strconv.Atoi(filepath.Ext(p)[1:])
	return n
}

func (f *file) close() {
	_ = f.w.Flush()
	_ = f.f.Close()
}
