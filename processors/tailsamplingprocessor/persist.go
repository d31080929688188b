package tailsamplingprocessor

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/buffer"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/cache"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/store"
)

// The restart snapshot: a magic line, then records, each a kind byte, a
// uvarint length, the body and a CRC-32 of kind and body. A trace record
// carries the trace ID, when its first span arrived, how much of its wait was
// left, and its segments; summaries are rebuilt from the spans at restore,
// so a changed policy configuration still judges them correctly. Cache
// records carry trace IDs.
const (
	snapshotMagic = "VIGIL-TAIL-SAMPLING 2\n"
	recTrace      = 1
	recSampled    = 2
	recNotSampled = 3
	maxRecord     = 64 << 20
)

func (p *sampler) snapshotPath() string {
	name := strings.NewReplacer("/", "_", "\\", "_", ":", "_").Replace(p.id.String())
	return filepath.Join(p.cfg.Storage, name+".snapshot")
}

// save writes pending traces and decision caches; it replaces the previous
// snapshot atomically (write, sync, rename).
func (p *sampler) save() error {
	if err := os.MkdirAll(p.cfg.Storage, 0o700); err != nil {
		return fmt.Errorf("cannot create storage directory: %w", err)
	}
	tmp := p.snapshotPath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("cannot write tail sampling snapshot: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	_, _ = bw.WriteString(snapshotMagic)
	now := time.Now()
	var body []byte
	var werr error
	write := func(kind byte, b []byte) {
		if werr != nil {
			return
		}
		hdr := binary.AppendUvarint([]byte{kind}, uint64(len(b)))
		crc := crc32.NewIEEE()
		_, _ = crc.Write([]byte{kind})
		_, _ = crc.Write(b)
		_, _ = bw.Write(hdr)
		_, _ = bw.Write(b)
		_, werr = bw.Write(binary.LittleEndian.AppendUint32(nil, crc.Sum32()))
	}
	p.mu.Lock()
	nowTick := p.tickOf(now)
	traces, unreadable := 0, 0
	p.store.Each(nowTick, func(i uint32, id [16]byte, sum *store.Summary, remaining int64) {
		body = append(body[:0], id[:]...)
		body = binary.AppendVarint(body, sum.FirstSeen)
		body = binary.AppendVarint(body, int64(remaining)*int64(p.tick))
		if err := p.store.Segments(i, func(hdr, seg []byte) error {
			body = binary.AppendUvarint(body, uint64(len(hdr)+len(seg)))
			body = append(body, hdr...)
			body = append(body, seg...)
			return nil
		}); err != nil {
			unreadable++
			return
		}
		write(recTrace, body)
		traces++
	})
	if unreadable > 0 {
		p.logger.Error("pending traces not saved: their buffered spans could not be read", zap.Int("traces", unreadable))
	}
	for _, c := range []struct {
		kind byte
		set  *cache.IDSet
	}{{recSampled, p.sampled}, {recNotSampled, p.notSampled}} {
		if c.set == nil {
			continue
		}
		for _, id := range c.set.All() {
			write(c.kind, id[:])
		}
	}
	p.mu.Unlock()
	if werr == nil {
		werr = bw.Flush()
	}
	if werr == nil {
		werr = f.Sync()
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("cannot write tail sampling snapshot: %w", werr)
	}
	if err := os.Rename(tmp, p.snapshotPath()); err != nil {
		return fmt.Errorf("cannot write tail sampling snapshot: %w", err)
	}
	p.logger.Info("saved pending traces for the next start", zap.Int("traces", traces), zap.String("path", p.snapshotPath()))
	return nil
}

// errSnapshot reports a snapshot that stops making sense; what was read
// before it is kept.
var errSnapshot = errors.New("corrupt tail sampling snapshot")

// snapshotRecord reads one record; io.EOF at a clean end.
func snapshotRecord(r *bufio.Reader) (byte, []byte, error) {
	kind, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > maxRecord {
		return 0, nil, fmt.Errorf("%w: record length", errSnapshot)
	}
	b := make([]byte, n+4)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, fmt.Errorf("%w: truncated record", errSnapshot)
	}
	crc := crc32.NewIEEE()
	_, _ = crc.Write([]byte{kind})
	_, _ = crc.Write(b[:n])
	if crc.Sum32() != binary.LittleEndian.Uint32(b[n:]) {
		return 0, nil, fmt.Errorf("%w: checksum mismatch", errSnapshot)
	}
	return kind, b[:n], nil
}

// restore reads the snapshot back: pending traces wait the rest of their
// decision_wait; cached decisions are cached again. A missing snapshot is
// no error; a damaged one restores what it can and counts the rest.
func (p *sampler) restore(ctx context.Context) error {
	f, err := os.Open(p.snapshotPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read tail sampling snapshot: %w", err)
	}
	defer f.Close()
	restored, bad, err := p.restoreFrom(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		p.logger.Warn("tail sampling snapshot damaged; kept what was readable", zap.Error(err), zap.Int("restored", restored), zap.Int("unrestorable", bad))
	}
	p.tel.ProcessorTailSamplingRestored.Add(ctx, int64(restored), metric.WithAttributes(attribute.String("outcome", "restored")))
	p.tel.ProcessorTailSamplingRestored.Add(ctx, int64(bad), metric.WithAttributes(attribute.String("outcome", "unrestorable")))
	p.logger.Info("restored pending traces", zap.Int("traces", restored), zap.Int("unrestorable", bad))
	// A snapshot is used once: a crash later must not replay it again.
	_ = os.Remove(p.snapshotPath())
	return nil
}

// restoreFrom replays a snapshot stream into the sampler.
func (p *sampler) restoreFrom(r *bufio.Reader) (restored, bad int, err error) {
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != snapshotMagic {
		return 0, 0, fmt.Errorf("%w: not a snapshot (wrong header)", errSnapshot)
	}
	now := time.Now()
	w := &ingest{idx: map[[16]byte]int32{}}
	for {
		kind, body, err := snapshotRecord(r)
		if errors.Is(err, io.EOF) {
			return restored, bad, nil
		}
		if err != nil {
			return restored, bad + 1, err
		}
		switch kind {
		case recTrace:
			if p.restoreTrace(w, body, now) {
				restored++
			} else {
				bad++
			}
		case recSampled, recNotSampled:
			if len(body) != 16 {
				bad++
				continue
			}
			c := p.sampled
			if kind == recNotSampled {
				c = p.notSampled
			}
			if c != nil {
				p.mu.Lock()
				c.Add([16]byte(body))
				p.mu.Unlock()
			}
		default:
			return restored, bad + 1, fmt.Errorf("%w: unknown record kind %d", errSnapshot, kind)
		}
	}
}

// restoreTrace decodes a trace record and ingests its spans as if they had
// just arrived, keeping their first-seen time and remaining wait.
func (p *sampler) restoreTrace(w *ingest, body []byte, now time.Time) bool {
	if len(body) < 16 {
		return false
	}
	id := pcommon.TraceID(body[:16])
	rest := body[16:]
	firstSeen, n := binary.Varint(rest)
	if n <= 0 {
		return false
	}
	rest = rest[n:]
	remaining, n := binary.Varint(rest)
	if n <= 0 {
		return false
	}
	rest = rest[n:]
	td := ptrace.NewTraces()
	dec := buffer.NewDecoder(td)
	for len(rest) > 0 {
		l, n := binary.Uvarint(rest)
		if n <= 0 || uint64(len(rest)-n) < l {
			return false
		}
		if err := dec.Segment(rest[n:n+int(l)], id); err != nil {
			return false
		}
		rest = rest[n+int(l):]
	}
	if td.SpanCount() == 0 {
		return false
	}
	w.reset()
	w.collect(td, p, now)
	p.mu.Lock()
	p.apply(now, w, max(time.Duration(remaining), 0), time.Unix(0, firstSeen))
	out := p.takeOut()
	p.mu.Unlock()
	p.forward(context.Background(), out)
	return true
}
