package tailsamplingprocessor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"

	"github.com/vigilhq/vigil/internal/redflag"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/buffer"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/cache"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/metadata"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/policy"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/store"
)

// Early-decision reasons (the decided_early metric's attribute).
const (
	reasonMemory    = "memory"
	reasonTraces    = "traces"
	reasonOversized = "oversized"
	reasonShutdown  = "shutdown"
)

// traceOverhead is what one waiting trace costs outside the arena (index
// entry, summary, wheel slot), charged against the budget.
const traceOverhead = 200

// sampler is the tail_sampling processor. Ingest encodes and summarises a
// batch without the lock, then takes it once to apply the batch to the trace
// table; a ticker goroutine decides due traces. Sampled spans are copied out
// of the arena under the lock and decoded and forwarded after it.
type sampler struct {
	cfg    *Config
	id     component.ID
	logger *zap.Logger
	next   consumer.Traces
	tel    *metadata.TelemetryBuilder

	policies      []policy.Policy
	comp          *policy.Compiler
	needSize      bool
	spanIngest    bool
	flags         atomic.Pointer[redflag.FlagSet]
	running       bool // Start succeeded and the decision loop runs
	sinks         []counterSink
	totals        totals // guarded by the decision loop (flush)
	lastPublish   time.Time
	redFlagStatus []string
	flagSources   []redflag.FlagSource
	voteAttrs     [][5]metric.MeasurementOption
	globalAttrs   [5]metric.MeasurementOption

	tick                time.Duration
	waitTicks, rootWait int64
	origin              time.Time
	budget              int64
	maxTraces           int

	mu          sync.Mutex
	store       *store.Store
	arena       *buffer.Arena
	sampled     *cache.IDSet // nil: off
	notSampled  *cache.IDSet
	votes       []policy.Decision
	voteCounts  [][5]int64
	global      [5]int64
	evalErrors  int64
	early       map[string]int64
	latencies   []float64
	newTraces   int64
	tooLarge    int64
	lateSampled int64
	lateDropped int64
	out         []byte // sampled spans waiting to be forwarded: (id, threshold, uvarint len, segment)*
	lastTh      uint64 // the threshold of the decision being carried out (noThreshold: none)
	spare       []byte
	due         []uint32
	closed      bool

	scratch sync.Pool
	gauges  atomic.Pointer[metadata.Gauges]

	startOnce, stopOnce sync.Once
	stop                chan struct{}
	done                chan struct{}
}

// counterSink is an extension that shows the sampler's counters (the
// vigil_status page does).
type counterSink interface {
	PublishCounters(source string, counters map[string]int64)
}

// publishEvery is how often the counters go to the counter sinks.
const publishEvery = time.Second

// totals are the sampler's counters since start, for the counter sinks.
type totals struct {
	sampled, notSampled, dropped, newTraces, tooLarge, lateSampled, lateDropped, early int64
}

var _ processor.Traces = (*sampler)(nil)

func newSampler(set processor.Settings, cfg *Config, next consumer.Traces) (*sampler, error) {
	p := &sampler{cfg: cfg, id: set.ID, logger: set.Logger, next: next, early: map[string]int64{},
		stop: make(chan struct{}), done: make(chan struct{})}
	b, err := cfg.buildPolicies(set.TelemetrySettings, &p.flags)
	if err != nil {
		return nil, err
	}
	p.policies, p.comp, p.redFlagStatus = b.Built, b.C, b.RedFlagStatus
	p.needSize = b.C.NeedsSize || cfg.MaximumTraceSizeBytes > 0
	p.spanIngest = cfg.SamplingStrategy == strategySpanIngest
	p.votes = make([]policy.Decision, len(p.policies))
	p.voteCounts = make([][5]int64, len(p.policies))
	prefix := ""
	if set.ID.Name() != "" {
		prefix = set.ID.Name() + "."
	}
	for i, pol := range p.policies {
		for d := policy.Decision(0); d < 5; d++ {
			p.voteAttrs = append(p.voteAttrs, [5]metric.MeasurementOption{})
			p.voteAttrs[i][d] = metric.WithAttributeSet(attribute.NewSet(attribute.String("policy", prefix+pol.Name),
				attribute.String("sampled", strconv.FormatBool(d == policy.Sampled)), attribute.String("decision", d.String())))
		}
	}
	p.voteAttrs = p.voteAttrs[:len(p.policies)]
	for d := policy.Decision(0); d < 5; d++ {
		p.globalAttrs[d] = metric.WithAttributeSet(attribute.NewSet(attribute.String("sampled", strconv.FormatBool(d == policy.Sampled)),
			attribute.String("decision", d.String())))
	}

	// Decisions are made on a tick of a fiftieth of decision_wait (10 ms to
	// 1 s), so a trace waits decision_wait give or take a tick.
	wait := max(cfg.DecisionWait, time.Second/100)
	p.tick = min(max(wait/50, 10*time.Millisecond), time.Second)
	p.waitTicks = int64((wait + p.tick - 1) / p.tick)
	if cfg.DecisionWaitAfterRootReceived > 0 {
		p.rootWait = max(1, int64(cfg.DecisionWaitAfterRootReceived/p.tick))
	}

	p.budget = memoryBudget(cfg.MemoryLimitMiB)
	p.maxTraces = int(p.budget * 15 / 100 / traceOverhead)
	arenaBudget := p.budget - int64(p.maxTraces)*traceOverhead
	chunk := int(min(max(arenaBudget/64, 256<<10), 4<<20))
	p.arena = buffer.NewArena(arenaBudget, chunk)
	expected := int(min(cfg.ExpectedNewTracesPerSec*uint64(wait/time.Second+1), uint64(p.maxTraces)))
	p.store = store.New(p.arena, int(p.waitTicks)+2, expected)
	cacheEntries := int(p.budget / 16 / cache.BytesPerEntry)
	p.sampled = newCache(cfg.DecisionCache.SampledCacheSize, cacheEntries)
	p.notSampled = newCache(cfg.DecisionCache.NonSampledCacheSize, cacheEntries)
	p.scratch.New = func() any { return &ingest{idx: map[[16]byte]int32{}} }
	p.gauges.Store(&metadata.Gauges{Budget: p.budget})
	if p.tel, err = metadata.NewTelemetryBuilder(set.TelemetrySettings, p); err != nil {
		return nil, err
	}
	return p, nil
}

func newCache(size *int, def int) *cache.IDSet {
	n := def
	if size != nil {
		n = *size
	}
	if n <= 0 {
		return nil
	}
	return cache.NewIDSet(n)
}

// memoryBudget is memory_limit_mib, or a quarter of the container's memory
// limit, or 512 MiB.
func memoryBudget(mib uint64) int64 {
	if mib > 0 {
		return int64(mib) << 20
	}
	self, _ := os.ReadFile("/proc/self/cgroup")
	for _, f := range cgroupLimitFiles(string(self)) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && n < 1<<50 {
			return max(n/4, 16<<20)
		}
	}
	return 512 << 20
}

// cgroupLimitFiles lists the files that may hold this process's memory
// limit, its own cgroup's first (from /proc/self/cgroup: "0::/path" for
// cgroup v2, "N:memory:/path" for v1), then the root's, which is the
// container's own inside a cgroup namespace. Reading only the root's missed
// a limit set on the process's cgroup outside a namespace (a systemd unit's
// MemoryMax=, a child cgroup), as the memory_limiter does not.
func cgroupLimitFiles(procSelfCgroup string) []string {
	var files []string
	for _, line := range strings.Split(procSelfCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[2] == "/" || strings.Contains(parts[2], "..") {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			files = append(files, "/sys/fs/cgroup"+parts[2]+"/memory.max")
		case strings.Contains(","+parts[1]+",", ",memory,"):
			files = append(files, "/sys/fs/cgroup/memory"+parts[2]+"/memory.limit_in_bytes")
		}
	}
	return append(files, "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
}

// Gauges implements metadata.Observed.
func (p *sampler) Gauges() metadata.Gauges { return *p.gauges.Load() }

func (p *sampler) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

func (p *sampler) tickOf(t time.Time) int64 { return int64(t.Sub(p.origin) / p.tick) }

// Start restores saved state, finds the status extension red_flag policies
// read, and starts the decision ticker.
func (p *sampler) Start(ctx context.Context, host component.Host) error {
	var err error
	p.startOnce.Do(func() {
		defer func() {
			if err != nil {
				close(p.done) // no loop to wait for in Shutdown
			}
		}()
		p.origin = time.Now()
		for _, ext := range host.GetExtensions() {
			if cs, ok := ext.(counterSink); ok {
				p.sinks = append(p.sinks, cs)
			}
		}
		for _, name := range p.redFlagStatus {
			var id component.ID
			if err = id.UnmarshalText([]byte(name)); err != nil {
				err = fmt.Errorf("red_flag: status %q: %w", name, err)
				return
			}
			ext, ok := host.GetExtensions()[id]
			if !ok {
				err = fmt.Errorf("red_flag: status extension %q is not configured", name)
				return
			}
			src, ok := ext.(redflag.FlagSource)
			if !ok {
				err = fmt.Errorf("red_flag: extension %q does not publish red flags (use a vigil_status extension)", name)
				return
			}
			p.flagSources = append(p.flagSources, src)
		}
		if p.cfg.Storage != "" {
			if err = p.restore(ctx); err != nil {
				return
			}
		}
		p.running = true
		go p.loop()
	})
	return err
}

func (p *sampler) loop() {
	defer close(p.done)
	t := time.NewTicker(p.tick)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.onTick(now)
		}
	}
}

// Shutdown stops the ticker, then saves pending traces (storage set),
// decides them (the default) or drops them (drop_pending_traces_on_shutdown).
// It is idempotent and safe without Start.
func (p *sampler) Shutdown(ctx context.Context) error {
	var err error
	p.stopOnce.Do(func() {
		p.startOnce.Do(func() { close(p.done) })
		close(p.stop)
		<-p.done
		// Saved state is only written by a sampler that started (and so
		// restored what an earlier run saved): never overwrite it otherwise.
		if p.running && p.cfg.Storage != "" {
			err = p.save()
		}
		p.mu.Lock()
		now := time.Now()
		switch {
		case p.cfg.Storage != "" && err == nil:
			// Saved: release without deciding.
			p.store.Each(0, func(i uint32, _ [16]byte, _ *store.Summary, _ int64) { p.due = append(p.due, i) })
			for _, i := range p.due {
				p.store.Release(i)
			}
		case p.cfg.DropPendingTracesOnShutdown:
			p.store.Each(0, func(i uint32, _ [16]byte, _ *store.Summary, _ int64) { p.due = append(p.due, i) })
			for _, i := range p.due {
				p.store.Release(i)
			}
		default:
			p.store.Each(0, func(i uint32, _ [16]byte, _ *store.Summary, _ int64) { p.due = append(p.due, i) })
			for _, i := range p.due {
				p.decide(i, now, reasonShutdown)
			}
		}
		p.due = p.due[:0]
		out := p.takeOut()
		p.closed = true
		p.mu.Unlock()
		p.forward(ctx, out)
		p.mu.Lock()
		p.arena.Close()
		p.store.Close()
		p.mu.Unlock()
		p.flush()
		p.tel.Shutdown()
	})
	return err
}

// ConsumeTraces buffers spans until their trace's decision; late spans follow
// a cached decision at once. It never refuses data: when the byte budget is
// full the oldest traces are decided early (counted).
func (p *sampler) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	now := time.Now()
	w := p.scratch.Get().(*ingest)
	w.collect(td, p, now)
	p.tel.SpansReceived.Add(ctx, int64(td.SpanCount()))
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		w.reset()
		p.scratch.Put(w)
		return errors.New("tail_sampling: shut down")
	}
	p.apply(now, w, 0, time.Time{})
	out := p.takeOut()
	p.mu.Unlock()
	w.reset()
	p.scratch.Put(w)
	// out holds traces decided now, most of them sent (and acknowledged) in
	// earlier requests: the caller giving up must not cancel their export.
	p.forward(context.WithoutCancel(ctx), out)
	return nil
}

// takeOut hands the pending output to the caller. Locked.
func (p *sampler) takeOut() []byte {
	out := p.out
	p.out, p.spare = p.spare[:0], nil
	return out
}

// forwardChunk bounds the encoded span bytes decoded into one request. A
// decoded span takes several times its encoded size on the Go heap, outside
// the byte budget, so a tick that samples much of the buffer at once (a
// burst of traces finishing together, a restore) is sent as several
// requests, never one as large as the buffer (measured: 24 MiB of buffered
// spans decoded at once grew the heap by 260 MiB).
const forwardChunk = 4 << 20

// forward decodes sampled spans and sends them on, at most forwardChunk
// encoded bytes per request.
func (p *sampler) forward(ctx context.Context, out []byte) {
	all := out
	const head = 16 + 8
	for len(out) > head {
		td := ptrace.NewTraces()
		dec := buffer.NewDecoder(td)
		used := 0
		for len(out) > head && used < forwardChunk {
			id := pcommon.TraceID(out[:16])
			th := binary.LittleEndian.Uint64(out[16:])
			n, k := binary.Uvarint(out[head:])
			if k <= 0 || uint64(len(out)-head-k) < n {
				out = nil
				break
			}
			seg := out[head+k : head+k+int(n)]
			if err := dec.Segment(seg, id); err != nil {
				p.logger.Error("cannot decode buffered spans", zap.Error(err))
			} else if th != noThreshold {
				writeThreshold(dec, th)
			}
			out = out[head+k+int(n):]
			used += head + k + int(n)
		}
		if td.SpanCount() == 0 {
			continue
		}
		if err := p.next.ConsumeTraces(ctx, td); err != nil {
			p.tel.ExportFailed.Add(ctx, int64(td.SpanCount()))
			p.logger.Warn("the next component refused sampled spans", zap.Int("spans", td.SpanCount()), zap.Error(err))
		}
	}
	p.recycle(all[:0])
}

func (p *sampler) recycle(b []byte) {
	if cap(b) == 0 || cap(b) > 8<<20 {
		return
	}
	p.mu.Lock()
	if p.spare == nil {
		p.spare = b[:0]
	}
	p.mu.Unlock()
}

// noThreshold marks forwarded spans that get no sampling threshold written
// (late spans following a cached decision).
const noThreshold = math.MaxUint64

// appendOut queues a segment of a sampled trace for forwarding. Locked.
func (p *sampler) appendOut(id [16]byte, th uint64, hdr, body []byte) {
	p.out = append(p.out, id[:]...)
	p.out = binary.LittleEndian.AppendUint64(p.out, th)
	p.out = binary.AppendUvarint(p.out, uint64(len(hdr)+len(body)))
	p.out = append(p.out, hdr...)
	p.out = append(p.out, body...)
}

// apply merges a collected batch into the trace table. Locked. restored is
// non-zero when replaying saved traces: their first-seen time and remaining
// wait come from the save.
func (p *sampler) apply(now time.Time, w *ingest, remaining time.Duration, firstSeen time.Time) {
	nowTick := p.tickOf(now)
	for gi := range w.groups {
		g := &w.groups[gi]
		id := g.tid
		i, ok := p.store.Lookup(id)
		if !ok {
			if p.sampled != nil && p.sampled.Contains(id) {
				w.eachSegment(g, p.store.MaxBody(), func(hdr, body []byte) { p.appendOut(id, noThreshold, hdr, body) })
				p.lateSampled += int64(g.sum.SpanCount)
				continue
			}
			if p.notSampled != nil && p.notSampled.Contains(id) {
				p.lateDropped += int64(g.sum.SpanCount)
				continue
			}
			for p.store.Len() >= p.maxTraces {
				o, ok := p.store.Oldest(nowTick)
				if !ok {
					break
				}
				p.decide(o, now, reasonTraces)
			}
			decide := nowTick + p.waitTicks
			seen := now
			if !firstSeen.IsZero() {
				decide, seen = nowTick+int64(remaining/p.tick)+1, firstSeen
			}
			i = p.store.Create(id, nowTick, decide)
			p.store.Summary(i).FirstSeen = seen.UnixNano()
			p.newTraces++
		}
		sum := p.store.Summary(i)
		var before store.Summary
		if p.comp.HasOTTL() {
			before = *sum
		}
		sum.Merge(&g.sum)
		if p.comp.HasLatency() {
			for r := g.first; r >= 0; r = w.recs[r].next {
				p.comp.ObserveTimes(sum, w.recs[r].startNs, w.recs[r].endNs)
			}
		}
		if p.comp.HasOTTL() {
			p.comp.FirstEvent(&before, sum)
		}
		if g.sum.Root && p.rootWait > 0 {
			p.store.Reschedule(i, nowTick, nowTick+p.rootWait)
		}
		if p.spanIngest {
			switch d := p.ingestDecision(g, sum, now); d {
			case policy.Sampled, policy.Dropped:
				p.finish(i, d, now, w, g)
				continue
			}
		}
		if !p.keep(i, g, w, now) {
			continue // decided at once: a span too large for the arena
		}
		if p.cfg.MaximumTraceSizeBytes > 0 && sum.Bytes > p.cfg.MaximumTraceSizeBytes {
			p.tooLarge++
			p.finish(i, policy.NotSampled, now, nil, nil)
		}
	}
}

// keep writes a group's spans into the arena as segments, deciding the
// oldest traces early while the budget is full. It returns false when the
// trace itself had to be decided now (it is then gone). Locked.
func (p *sampler) keep(i uint32, g *group, w *ingest, now time.Time) bool {
	ok := true
	w.eachSegment(g, p.store.MaxBody(), func(hdr, body []byte) {
		if !ok {
			return
		}
		if len(body) > p.store.MaxBody() {
			// One span larger than an arena chunk: decide the trace now with it.
			p.early[reasonOversized]++
			p.decideWith(i, now, hdr, body)
			ok = false
			return
		}
		for p.store.HeaderBytes() > p.budget/10 || !p.store.Append(i, hdr, body) {
			o, found := p.store.Oldest(p.tickOf(now))
			if !found || o == i {
				p.early[reasonMemory]++
				p.decideWith(i, now, hdr, body)
				ok = false
				return
			}
			p.early[reasonMemory]++
			p.decide(o, now, reasonMemory)
		}
	})
	return ok
}

// decide evaluates the policies on trace i (counting each policy's vote)
// and carries the decision out. Locked.
func (p *sampler) decide(i uint32, now time.Time, reason string) {
	p.decideWith(i, now, nil, nil)
	if reason == reasonShutdown {
		p.early[reasonShutdown]++
	}
}

// decideWith decides trace i; extraHdr and extraBody are a segment not
// stored in the arena that belongs to the trace (forwarded too if it is
// sampled). Locked.
func (p *sampler) decideWith(i uint32, now time.Time, extraHdr, extraBody []byte) {
	t := policy.Trace{ID: p.store.ID(i), Sum: p.store.Summary(i), Now: now}
	d, _ := policy.Decide(p.policies, &t, p.cfg.SampleOnFirstMatch, p.votes)
	p.lastTh = noThreshold
	if d == policy.Sampled && p.cfg.WriteThreshold {
		p.lastTh = policy.EffectiveThreshold(p.policies, p.votes).Unsigned()
	}
	for j, v := range p.votes {
		switch v {
		case policy.NotEvaluated:
		case policy.Errored:
			p.evalErrors++
		default:
			p.voteCounts[j][v]++
		}
	}
	if extraBody != nil {
		p.finishExtra(i, d, now, extraHdr, extraBody)
		return
	}
	p.finish(i, d, now, nil, nil)
}

// finish carries decision d out on trace i: a sampled trace's spans (stored,
// plus group g's when given) are queued for forwarding and its ID goes to the
// sampled cache; otherwise to the not-sampled cache. Locked.
func (p *sampler) finish(i uint32, d policy.Decision, now time.Time, w *ingest, g *group) {
	id := p.store.ID(i)
	if d == policy.Sampled {
		th := p.lastTh
		p.readSegments(i, id, th)
		if g != nil {
			w.eachSegment(g, p.store.MaxBody(), func(hdr, body []byte) { p.appendOut(id, th, hdr, body) })
		}
	}
	p.settle(i, id, d, now)
}

func (p *sampler) finishExtra(i uint32, d policy.Decision, now time.Time, hdr, body []byte) {
	id := p.store.ID(i)
	if d == policy.Sampled {
		th := p.lastTh
		p.readSegments(i, id, th)
		p.appendOut(id, th, hdr, body)
	}
	p.settle(i, id, d, now)
}

// readSegments queues a sampled trace's stored spans for forwarding. A
// segment that cannot be read (arena corruption, which no test has produced)
// is logged, never skipped silently. Locked.
func (p *sampler) readSegments(i uint32, id [16]byte, th uint64) {
	if err := p.store.Segments(i, func(hdr, body []byte) error { p.appendOut(id, th, hdr, body); return nil }); err != nil {
		p.logger.Error("cannot read a sampled trace's buffered spans; forwarding what was read",
			zap.String("trace_id", pcommon.TraceID(id).String()), zap.Error(err))
	}
}

func (p *sampler) settle(i uint32, id [16]byte, d policy.Decision, now time.Time) {
	p.global[d]++
	if d == policy.Sampled {
		if p.sampled != nil {
			p.sampled.Add(id)
		}
	} else if p.notSampled != nil {
		p.notSampled.Add(id)
	}
	if fs := p.store.Summary(i).FirstSeen; fs > 0 && len(p.latencies) < 4096 {
		p.latencies = append(p.latencies, float64(now.UnixNano()-fs)/1e9)
	}
	p.store.Release(i)
}

// ingestDecision is the span-ingest strategy: each batch is judged on its own
// spans (with the trace's cumulative span count and size): a drop policy that
// drops ends it; a drop policy that does not match makes the batch pending;
// otherwise the first sampling policy samples. Locked.
func (p *sampler) ingestDecision(g *group, cum *store.Summary, now time.Time) policy.Decision {
	local := g.sum
	local.SpanCount, local.Bytes, local.TracesBytes = cum.SpanCount, cum.Bytes, cum.TracesBytes
	t := policy.Trace{ID: g.tid, Sum: &local, Now: now}
	dropPending := false
	for j, pol := range p.policies {
		if !pol.Drop && dropPending {
			break
		}
		v := pol.Evaluator.Evaluate(&t)
		switch v {
		case policy.Errored:
			p.evalErrors++
			continue
		case policy.Dropped:
			p.voteCounts[j][v]++
			return policy.Dropped
		}
		p.voteCounts[j][v]++
		if pol.Drop {
			dropPending = true
			continue
		}
		if v == policy.Sampled {
			p.lastTh = noThreshold
			if p.cfg.WriteThreshold {
				p.lastTh = policy.EffectiveThreshold(p.policies[j:j+1], []policy.Decision{v}).Unsigned()
			}
			return policy.Sampled
		}
	}
	return policy.Pending
}

// onTick decides the traces whose wait is over and forwards what was sampled.
func (p *sampler) onTick(now time.Time) {
	t0 := time.Now()
	if len(p.flagSources) > 0 {
		sets := make([]*redflag.FlagSet, len(p.flagSources))
		for i, src := range p.flagSources {
			sets[i] = src.FlaggedSet()
		}
		fs := redflag.Union(sets...)
		if fs == nil {
			fs = redflag.NewFlagSet(nil, nil, nil)
		}
		p.flags.Store(fs)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.due = p.store.Due(p.tickOf(now), p.due[:0])
	for _, i := range p.due {
		if p.spanIngest {
			p.finish(i, policy.NotSampled, now, nil, nil)
			continue
		}
		p.decide(i, now, "")
	}
	out := p.takeOut()
	p.mu.Unlock()
	p.forward(context.Background(), out)
	p.flush()
	p.tel.DecisionTimerLatency.Record(context.Background(), time.Since(t0).Milliseconds())
}

// flush moves the counters gathered under the lock to the metrics.
func (p *sampler) flush() {
	p.mu.Lock()
	votes := make([][5]int64, len(p.voteCounts))
	copy(votes, p.voteCounts)
	clear(p.voteCounts)
	global := p.global
	p.global = [5]int64{}
	evalErrors, newTraces, tooLarge, lateS, lateD := p.evalErrors, p.newTraces, p.tooLarge, p.lateSampled, p.lateDropped
	p.evalErrors, p.newTraces, p.tooLarge, p.lateSampled, p.lateDropped = 0, 0, 0, 0, 0
	early := p.early
	p.early = map[string]int64{}
	lat := p.latencies
	p.latencies = nil
	g := &metadata.Gauges{Traces: int64(p.store.Len()), Buffered: p.arena.LiveBytes(), Mapped: p.arena.MappedBytes(), Budget: p.budget}
	if p.sampled != nil {
		g.EvictedSampled = int64(p.sampled.Evicted())
	}
	if p.notSampled != nil {
		g.EvictedNotSampled = int64(p.notSampled.Evicted())
	}
	p.mu.Unlock()
	p.gauges.Store(g)

	ctx := context.Background()
	for j := range votes {
		for d, n := range votes[j] {
			if n > 0 {
				p.tel.CountTracesSampled.Add(ctx, n, p.voteAttrs[j][d])
			}
		}
	}
	for d, n := range global {
		if n > 0 {
			p.tel.GlobalCountTracesSampled.Add(ctx, n, p.globalAttrs[d])
		}
	}
	add := func(c metric.Int64Counter, n int64, opts ...metric.AddOption) {
		if n > 0 {
			c.Add(ctx, n, opts...)
		}
	}
	add(p.tel.PolicyEvaluationError, evalErrors)
	add(p.tel.NewTraceIDReceived, newTraces)
	add(p.tel.TracesDroppedTooLarge, tooLarge)
	add(p.tel.EarlyReleasesFromCache, lateS, metric.WithAttributes(attribute.String("sampled", "true")))
	add(p.tel.EarlyReleasesFromCache, lateD, metric.WithAttributes(attribute.String("sampled", "false")))
	for reason, n := range early {
		add(p.tel.DecidedEarly, n, metric.WithAttributes(attribute.String("reason", reason)))
	}
	for _, v := range lat {
		p.tel.DecisionLatency.Record(ctx, v)
	}

	t := &p.totals
	t.sampled += global[policy.Sampled]
	t.notSampled += global[policy.NotSampled]
	t.dropped += global[policy.Dropped]
	t.newTraces += newTraces
	t.tooLarge += tooLarge
	t.lateSampled += lateS
	t.lateDropped += lateD
	for _, n := range early {
		t.early += n
	}
	if len(p.sinks) > 0 && time.Since(p.lastPublish) >= publishEvery {
		p.lastPublish = time.Now()
		c := map[string]int64{
			"traces_sampled": t.sampled, "traces_not_sampled": t.notSampled, "traces_dropped": t.dropped,
			"traces_received": t.newTraces, "traces_too_large": t.tooLarge, "decided_early": t.early,
			"late_spans_forwarded": t.lateSampled, "late_spans_dropped": t.lateDropped,
			"traces_buffered": g.Traces, "bytes_buffered": g.Buffered, "memory_budget_bytes": g.Budget,
			"decisions_evicted": g.EvictedSampled + g.EvictedNotSampled,
		}
		for _, cs := range p.sinks {
			cs.PublishCounters(p.id.String(), c)
		}
	}
}

// writeThreshold sets the OTEP 235 threshold (tracestate ot=th) on the spans
// the decoder just added, never raising a span's sampling probability; a
// tracestate that does not parse is left alone.
func writeThreshold(dec *buffer.Decoder, unsigned uint64) {
	th, err := sampling.UnsignedToThreshold(unsigned)
	if err != nil {
		return
	}
	spans, from := dec.Last()
	var b strings.Builder
	for k := from; k < spans.Len(); k++ {
		sp := spans.At(k)
		ts, err := sampling.NewW3CTraceState(sp.TraceState().AsRaw())
		if err != nil || ts.OTelValue().UpdateTValueWithSampling(th) != nil {
			continue
		}
		b.Reset()
		if ts.Serialize(&b) == nil {
			sp.TraceState().FromRaw(b.String())
		}
	}
}
