package containerlogreceiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v7"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"

	"github.com/vigilhq/vigil/receivers/containerlogreceiver/internal/metadata"
	"github.com/vigilhq/vigil/receivers/containerlogreceiver/internal/parse"
)

// logReceiver polls the include globs and reads every matched file from its
// offset, in one goroutine: lines are parsed, partial lines merged and
// records batched up to batch_size, the batch is sent, and only once the
// pipeline took it do the offsets (checkpoints) move.
type logReceiver struct {
	cfg  *Config
	set  receiver.Settings
	next consumer.Logs
	tb   *metadata.TelemetryBuilder
	obs  *receiverhelper.ObsReport
	tel  *telemetry

	storage storage.Client // nil without storage
	joiner  func() *parse.Joiner
	json    *parse.JSONParser
	keys    parse.JSONKeys

	readers map[fileKey]*reader
	known   map[fileKey]checkpoint // checkpoints loaded at start, not yet matched
	gen     uint64
	open    int
	// idle is this poll's files read to their end, idle longest first
	// (see closeIdleTo), and idleBuilt how often it was listed in this
	// poll; both are reset when a poll starts.
	idle      []*reader
	idleBuilt int

	lastListWarn time.Time
	observed     pcommon.Timestamp // when the current read was made
	resumed      bool              // checkpoints were found at start
	// checkpointFailing: the last checkpoint write failed (warned once).
	checkpointFailing bool

	buf     []byte // one read
	scratch []byte // Docker's unescaped content
	batch   *batch

	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex // guards what telemetry callbacks read (open)
}

var _ receiver.Logs = (*logReceiver)(nil)

func newReceiver(set receiver.Settings, cfg *Config, next consumer.Logs) (*logReceiver, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, fmt.Errorf("cannot create telemetry: %w", err)
	}
	obs, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID: set.ID, Transport: "file", ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot create obsreport: %w", err)
	}
	r := &logReceiver{
		cfg: cfg, set: set, next: next, tb: tb, obs: obs,
		readers: map[fileKey]*reader{},
		known:   map[fileKey]checkpoint{},
		buf:     make([]byte, cfg.ReadBufferSize),
		keys:    parse.JSONKeys{Severity: cfg.JSON.SeverityKeys, Message: cfg.JSON.MessageKeys, Time: cfg.JSON.TimeKeys},
	}
	if cfg.JSON.Enabled {
		r.json = &parse.JSONParser{}
	}
	if p := cfg.Multiline.LineStartPattern; p != "" {
		re := regexp.MustCompile(p) // checked by Validate
		r.joiner = func() *parse.Joiner { return parse.NewJoiner(re, cfg.Multiline.MaxLines, int(cfg.MaxLogSize)) }
	}
	r.tel, err = newTelemetry(tb, r)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Start loads the checkpoints and starts polling.
func (r *logReceiver) Start(ctx context.Context, host component.Host) error {
	if r.cfg.Storage != nil {
		ext, ok := host.GetExtensions()[*r.cfg.Storage]
		if !ok {
			return fmt.Errorf("storage: extension %s is not configured", r.cfg.Storage)
		}
		se, ok := ext.(storage.Extension)
		if !ok {
			return fmt.Errorf("storage: extension %s is not a storage extension", r.cfg.Storage)
		}
		c, err := se.GetClient(ctx, component.KindReceiver, r.set.ID, "")
		if err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		r.storage = c
		raw, err := c.Get(ctx, checkpointKey)
		if err != nil {
			return fmt.Errorf("storage: cannot read the checkpoints: %w", err)
		}
		cps, err := decodeCheckpoints(raw)
		if err != nil {
			// A damaged checkpoint must not stop the agent: files are
			// read from their beginning (duplicates, not losses).
			r.set.Logger.Warn("Checkpoints unreadable; files are read from their beginning", zap.Error(err))
		}
		for _, cp := range cps {
			r.known[cp.key] = cp
		}
		r.resumed = raw != nil
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done = make(chan struct{})
	go r.run(loopCtx)
	return nil
}

// Shutdown stops polling; a batch the pipeline has not taken is not
// checkpointed, so it is read again after a restart.
func (r *logReceiver) Shutdown(ctx context.Context) error {
	if r.cancel != nil {
		r.cancel()
		select {
		case <-r.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, rd := range r.readers {
		rd.close()
	}
	var err error
	if r.storage != nil {
		err = r.storage.Close(ctx)
	}
	r.tb.Shutdown()
	return err
}

func (r *logReceiver) run(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.cfg.PollInterval)
	defer t.Stop()
	for {
		r.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// poll finds the files, reads every one with something new, and sends.
func (r *logReceiver) poll(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	r.gen++
	first := r.gen == 1
	// The last poll's idle list: no reader is kept alive by it.
	clear(r.idle)
	r.idle, r.idleBuilt = r.idle[:0], 0
	for _, path := range r.match() {
		fi, err := os.Stat(path)
		if err != nil {
			continue // gone since the glob
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || !fi.Mode().IsRegular() {
			continue
		}
		key := fileKey{dev: uint64(st.Dev), ino: st.Ino} //nolint:unconvert // Dev is uint32 on some platforms
		rd := r.readers[key]
		if rd != nil && rd.f == nil && (fi.Size() != rd.size || !fi.ModTime().Equal(rd.mtime)) && !r.sameFile(rd, path) {
			// A closed reader's file was deleted and its inode given to
			// a new one: that is a new file.
			r.forget(rd)
			rd = nil
		}
		if rd == nil {
			rd = r.discover(key, path, fi.Size(), first)
			if rd == nil {
				continue
			}
		} else if rd.path != path {
			r.set.Logger.Debug("File renamed", zap.String("from", rd.path), zap.String("to", path))
			r.tel.rotated.Add(1)
			rd.path = path
			rd.pod, _ = parse.ParsePodPath(path)
		}
		if fi.Size() < rd.offset {
			r.set.Logger.Info("File truncated; reading it again from the start", zap.String("path", path),
				zap.Int64("offset", rd.offset), zap.Int64("size", fi.Size()))
			r.tel.truncated.Add(1)
			// What was in progress before the cut is sent, not lost.
			for i := range rd.streams {
				r.flushStream(rd, parse.Stream(i), rd.offset)
			}
			rd.reset()
		}
		rd.size, rd.mtime = fi.Size(), fi.ModTime()
		rd.gen, rd.unmatched = r.gen, 0
	}
	// Checkpoints of files not found at the first poll are of files gone
	// while the agent was down.
	clear(r.known)
	// Read in order(): open files first, so that once read to their end
	// they can make room under max_open_files; in each group the largest
	// backlog last, so small files are not starved by one.
	for _, rd := range r.order() {
		if ctx.Err() != nil {
			return
		}
		r.drain(ctx, rd)
		if rd.gen != r.gen && rd.offset >= rd.size && r.gone(rd) {
			r.forget(rd)
		}
	}
	r.flushIdle()
	r.send(ctx)
	r.closeIdle()
}

// gone reports whether a file no glob named this poll is gone for good:
// deleted (no link left), or unnamed for several polls. A rename that
// happens between a glob's listing and the stat of its path makes a file
// unnamed for one poll; forgetting it then would read it again from its
// beginning when the next poll finds it under its new name.
func (r *logReceiver) gone(rd *reader) bool {
	rd.unmatched++
	if rd.f != nil {
		if fi, err := rd.f.Stat(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
				return true
			}
		}
	}
	return rd.unmatched > unmatchedPolls
}

// unmatchedPolls is how many polls a file that still exists may go unnamed
// by the globs before it is forgotten.
const unmatchedPolls = 5

// sameFile reports whether path holds the file rd was reading when it was
// closed: its first bytes are the same. Only asked when the file's size or
// modification time changed since the last poll: a closed idle file is not
// opened every poll.
func (r *logReceiver) sameFile(rd *reader, path string) bool {
	if len(rd.fp) == 0 {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return true // gone since the stat: drain finds out
	}
	defer f.Close()
	buf := r.buf[:len(rd.fp)] // not in use while the poll stats
	n, _ := f.ReadAt(buf, 0)
	return bytes.Equal(buf[:n], rd.fp)
}

// match lists the files the globs name, excluded and compressed ones left
// out, each once.
func (r *logReceiver) match() []string {
	var out []string
	seen := map[string]bool{}
	r.checkListable()
	for _, g := range r.cfg.Include {
		paths, _ := filepath.Glob(g) // the pattern was checked by Validate
		for _, p := range paths {
			// The kubelet compresses a rotated file into <name>.tmp, then
			// renames it <name>.gz: neither is a log to read.
			if seen[p] || strings.HasSuffix(p, ".gz") || strings.HasSuffix(p, ".tmp") || r.excluded(p) {
				continue
			}
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// checkListable warns, at the first poll and every five minutes after,
// when the directory an include glob starts from cannot be listed: a glob
// matches nothing there, silently, and no log would ever be read. The
// usual cause is an agent running as a user the runtime's files do not
// let in (/var/log/pods is root 0750 on containerd).
func (r *logReceiver) checkListable() {
	if !r.lastListWarn.IsZero() && time.Since(r.lastListWarn) < 5*time.Minute {
		return
	}
	for _, g := range r.cfg.Include {
		dir := g
		if i := strings.IndexAny(g, "*?[\\"); i >= 0 {
			dir = filepath.Dir(g[:i+1])
		}
		f, err := os.Open(dir)
		if err == nil {
			_, err = f.Readdirnames(1)
			_ = f.Close()
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			r.lastListWarn = time.Now()
			r.set.Logger.Warn("Cannot list the directory of an include glob: no log there will be read",
				zap.String("include", g), zap.String("directory", dir), zap.Int("uid", os.Getuid()),
				zap.Ints("groups", groups()), zap.Error(err))
		}
	}
	if r.lastListWarn.IsZero() {
		r.lastListWarn = time.Now() // checked: look again in five minutes
	}
}

func groups() []int {
	g, _ := os.Getgroups()
	return g
}

func (r *logReceiver) excluded(p string) bool {
	for _, g := range r.cfg.Exclude {
		if ok, _ := filepath.Match(g, p); ok {
			return true
		}
	}
	return false
}

// discover starts following a file: from its checkpoint if it has one,
// else from start_at for files there at the first poll, else from its
// beginning (a new file).
func (r *logReceiver) discover(key fileKey, path string, size int64, first bool) *reader {
	rd := newReader(key, path, r.joiner)
	room := r.room()
	if !r.openFile(rd) {
		return nil
	}
	n, _ := rd.f.ReadAt(r.buf[:min(fingerprintSize, len(r.buf))], 0)
	rd.noteFingerprint(r.buf[:n], 0)
	if !room {
		// Known now, read when there is room: open only for its first
		// bytes, one over max_open_files for that moment.
		r.closeFile(rd)
	}
	if cp, ok := r.known[key]; ok && matchesFingerprint(rd.fp, cp.fp) && cp.offset <= size {
		rd.offset, rd.safe, rd.acked = cp.offset, cp.offset, cp.offset
		delete(r.known, key)
	} else if first && r.cfg.StartAt == "end" && !r.resumed {
		// start_at applies to a first start only: after a restart, a
		// file without a checkpoint is one that appeared while the agent
		// was down, and is read from its beginning.
		rd.offset, rd.safe, rd.acked = size, size, size
	}
	r.readers[key] = rd
	return rd
}

// openFile opens rd's path and checks it is still rd's file.
func (r *logReceiver) openFile(rd *reader) bool {
	f, err := os.Open(rd.path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			r.set.Logger.Warn("Cannot open a log file", zap.String("path", rd.path), zap.Error(err))
		}
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || (fileKey{dev: uint64(st.Dev), ino: st.Ino}) != rd.key { //nolint:unconvert
		_ = f.Close()
		return false
	}
	rd.f = f
	r.mu.Lock()
	r.open++
	r.mu.Unlock()
	return true
}

func (r *logReceiver) closeFile(rd *reader) {
	if rd.f != nil {
		rd.close()
		r.mu.Lock()
		r.open--
		r.mu.Unlock()
	}
}

// forget drops a file read to its end that no glob names any more (rotated
// away and read, or deleted): what it held in progress is sent.
func (r *logReceiver) forget(rd *reader) {
	if len(rd.carry) > 0 {
		// A last line without its newline: the file will not grow.
		r.handleLine(rd, rd.carry, rd.carryStart, rd.offset)
		rd.carry = rd.carry[:0]
	}
	for i := range rd.streams {
		r.flushStream(rd, parse.Stream(i), rd.offset)
	}
	r.closeFile(rd)
	delete(r.readers, rd.key)
}

// order is the readers with something to read: the open ones first (once
// read to their end they can be closed to make room for the others under
// max_open_files), each group smallest backlog first.
func (r *logReceiver) order() []*reader {
	out := make([]*reader, 0, len(r.readers))
	for _, rd := range r.readers {
		if rd.offset < rd.size || rd.gen != r.gen {
			out = append(out, rd)
		}
	}
	slices.SortFunc(out, func(a, b *reader) int {
		if (a.f == nil) != (b.f == nil) {
			if a.f != nil {
				return -1
			}
			return 1
		}
		return int((a.size - a.offset) - (b.size - b.offset))
	})
	return out
}

// drain reads rd to its end, sending batches as they fill.
func (r *logReceiver) drain(ctx context.Context, rd *reader) {
	if rd.f == nil && !r.room() {
		// Read at a later poll, once files read to their end are closed.
		return
	}
	if rd.f == nil && !r.openFile(rd) {
		if rd.gen != r.gen {
			if rd.offset < rd.size {
				// Gone before it was read to its end.
				r.tel.removed.Add(1)
			}
			rd.size = rd.offset
			rd.unmatched = unmatchedPolls // nothing left to wait for
		}
		return
	}
	for ctx.Err() == nil {
		n, err := rd.f.ReadAt(r.buf, rd.offset)
		// One observed time per read, not per line.
		r.observed = pcommon.NewTimestampFromTime(time.Now())
		if n > 0 {
			r.tel.bytes.Add(int64(n))
			rd.lastData = time.Now()
			r.consume(rd, r.buf[:n])
		}
		if r.batch != nil && r.batch.bytes >= int(r.cfg.BatchSize) {
			r.send(ctx)
		}
		if n == 0 || errors.Is(err, io.EOF) {
			if rd.offset > rd.size {
				rd.size = rd.offset
			}
			return
		}
		if err != nil {
			r.set.Logger.Warn("Cannot read a log file", zap.String("path", rd.path), zap.Error(err))
			return
		}
	}
}

// send hands the batch to the pipeline, again with exponential backoff
// (retry_on_failure, jitter included) while it refuses, and moves the
// offsets of its files once it is taken. The whole batch is sent again:
// what a refusal names is the exporters' copy, after the processors, and a
// fan-out's refusal may name only one exporter's share. The receiver's
// accepted and refused counts are per record, once: refused are the records
// given up on, not every attempt's.
func (r *logReceiver) send(ctx context.Context) {
	b := r.batch
	if b == nil || b.n == 0 {
		r.commit(ctx, b)
		return
	}
	r.batch = nil
	rc := r.cfg.RetryOnFailure
	bo := backoff.ExponentialBackOff{
		InitialInterval:     rc.InitialInterval,
		RandomizationFactor: rc.RandomizationFactor,
		Multiplier:          rc.Multiplier,
		MaxInterval:         rc.MaxInterval,
	}
	bo.Reset()
	began := time.Now()
	octx := r.obs.StartLogsOp(ctx)
	for {
		err := r.next.ConsumeLogs(octx, b.logs)
		if err == nil {
			r.tel.delivered.Add(int64(b.n))
			r.obs.EndLogsOp(octx, metadata.Type.String(), b.n, nil)
			break
		}
		if ctx.Err() != nil {
			// Stopping: not checkpointed, read again after the restart.
			r.obs.EndLogsOp(octx, metadata.Type.String(), 0, nil)
			return
		}
		wait := bo.NextBackOff()
		if consumererror.IsPermanent(err) || !rc.Enabled ||
			(rc.MaxElapsedTime > 0 && time.Since(began)+wait > rc.MaxElapsedTime) {
			r.set.Logger.Error("The pipeline refused a batch, and it is not sent again: its records are dropped",
				zap.Int("records", b.n), zap.Bool("permanent", consumererror.IsPermanent(err)), zap.Error(err))
			r.tel.dropped.Add(int64(b.n))
			r.obs.EndLogsOp(octx, metadata.Type.String(), b.n, err)
			break
		}
		r.tel.retries.Add(1)
		select {
		case <-ctx.Done():
			r.obs.EndLogsOp(octx, metadata.Type.String(), 0, nil)
			return
		case <-time.After(wait):
		}
	}
	r.commit(ctx, b)
}

// commit moves every file's checkpoint to its safe offset: all it holds
// before that offset is in batches the pipeline took.
func (r *logReceiver) commit(ctx context.Context, _ *batch) {
	if ctx.Err() != nil {
		// Stopping while a batch was refused: it is not checkpointed.
		return
	}
	changed := false
	for _, rd := range r.readers {
		if rd.acked != rd.safe {
			rd.acked, changed = rd.safe, true
		}
	}
	if !changed || r.storage == nil {
		return
	}
	// Every file's checkpoint is a reader's: r.known is emptied by the
	// first poll, before anything is committed.
	cps := make([]checkpoint, 0, len(r.readers))
	for _, rd := range r.readers {
		cps = append(cps, checkpoint{key: rd.key, offset: rd.acked, fp: rd.fp})
	}
	if err := r.storage.Set(ctx, checkpointKey, encodeCheckpoints(cps)); err != nil {
		r.tel.checkpointErrors.Add(1)
		if !r.checkpointFailing {
			// Once per failing spell (counted every time).
			r.set.Logger.Warn("Cannot save the checkpoints: a restart would read again what was sent since the last saved ones", zap.Error(err))
		}
		r.checkpointFailing = true
		// Written again at the next commit.
		for _, rd := range r.readers {
			rd.acked = -1
		}
		return
	}
	if r.checkpointFailing {
		r.checkpointFailing = false
		r.set.Logger.Info("Checkpoints saved again")
	}
}

// room reports whether one more file may be opened under max_open_files,
// closing files read to their end to make it.
func (r *logReceiver) room() bool {
	if r.open < r.cfg.MaxOpenFiles {
		return true
	}
	r.closeIdleTo(r.cfg.MaxOpenFiles - 1)
	return r.open < r.cfg.MaxOpenFiles
}

// closeIdle closes the files idle longest while more than max_open_files
// are open; they are reopened when they grow.
func (r *logReceiver) closeIdle() {
	r.closeIdleTo(r.cfg.MaxOpenFiles)
}

// closeIdleTo closes files read to their end, idle longest first, until at
// most limit are open. The candidates are listed and sorted once per poll
// and taken from the front as files are opened (a node with many more log
// files than max_open_files opens many per poll), and listed again at most
// once more when they run out: files read to their end since then become
// candidates. Past that, a file waits for the next poll.
func (r *logReceiver) closeIdleTo(limit int) {
	if r.open <= limit {
		return
	}
	for r.open > limit {
		if len(r.idle) == 0 {
			if r.idleBuilt >= 2 {
				return
			}
			r.listIdle()
			if len(r.idle) == 0 {
				return
			}
		}
		rd := r.idle[0]
		r.idle[0] = nil
		r.idle = r.idle[1:]
		// Still open and read to its end: not reopened, read or closed
		// since the list was made.
		if rd.f != nil && rd.offset >= rd.size {
			r.closeFile(rd)
		}
	}
}

// listIdle lists the open files read to their end, idle longest first. A
// line without its newline yet stays in carry: reading goes on at offset
// once reopened.
func (r *logReceiver) listIdle() {
	r.idleBuilt++
	clear(r.idle)
	r.idle = r.idle[:0]
	for _, rd := range r.readers {
		if rd.f != nil && rd.offset >= rd.size {
			r.idle = append(r.idle, rd)
		}
	}
	slices.SortFunc(r.idle, func(a, b *reader) int { return a.lastData.Compare(b.lastData) })
}

// batch is the records waiting to be sent, one ResourceLogs per file.
type batch struct {
	logs  plog.Logs
	files map[*reader]plog.LogRecordSlice
	bytes int
	n     int
}

func newBatch() *batch {
	return &batch{logs: plog.NewLogs(), files: map[*reader]plog.LogRecordSlice{}}
}

// record appends a record of rd's file.
func (b *batch) record(rd *reader) plog.LogRecord {
	recs, ok := b.files[rd]
	if !ok {
		rl := b.logs.ResourceLogs().AppendEmpty()
		attrs := rl.Resource().Attributes()
		if rd.pod.Pod != "" {
			attrs.PutStr("k8s.namespace.name", rd.pod.Namespace)
			attrs.PutStr("k8s.pod.name", rd.pod.Pod)
			attrs.PutStr("k8s.pod.uid", rd.pod.UID)
			attrs.PutStr("k8s.container.name", rd.pod.Container)
			attrs.PutStr("k8s.container.restart_count", rd.pod.RestartCount)
		}
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName(metadata.ScopeName)
		recs = sl.LogRecords()
		b.files[rd] = recs
	}
	b.n++
	return recs.AppendEmpty()
}
