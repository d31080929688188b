package tailsamplingprocessor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

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
//
// Its state is split by responsibility, one part per file: ingest (ingest.go:
// a batch encoded and summarised outside the lock), the trace index and its
// timing wheel (index.go), the decision (decide.go), forwarding (forward.go),
// persistence (persist.go) and the counters behind its telemetry
// (telemetry.go). mu guards every part's fields unless a field says
// otherwise.
type sampler struct {
	cfg    *Config
	id     component.ID
	logger *zap.Logger
	tel    *metadata.TelemetryBuilder

	mu      sync.Mutex
	scratch sync.Pool // *ingest, one per ConsumeTraces call

	lifecycle
	traceIndex
	decider
	forwarder
	counters
}

// lifecycle is Start, the decision loop and Shutdown.
type lifecycle struct {
	running             bool // Start succeeded and the decision loop runs; not guarded (set before the loop starts)
	closed              bool // Shutdown has released the table: ingest refuses
	startOnce, stopOnce sync.Once
	stop                chan struct{}
	done                chan struct{}
}

// traceIndex is the trace table (store) with its timing wheel, the arena that
// holds the spans, and the caches of decisions already made (index.go).
type traceIndex struct {
	// Set by newSampler and Start, read-only after.
	tick                time.Duration
	waitTicks, rootWait int64
	origin              time.Time
	budget              int64
	maxTraces           int

	store      *store.Store
	arena      *buffer.Arena
	sampled    *cache.IDSet // nil: off
	notSampled *cache.IDSet
	due        []uint32 // scratch: the traces one tick decides
}

// decider is the policies and what deciding a trace needs (decide.go).
type decider struct {
	// Set by newSampler and Start, read-only after.
	policies      []policy.Policy
	comp          *policy.Compiler
	needSize      bool
	spanIngest    bool
	redFlagStatus []string
	flagSources   []redflag.FlagSource

	flags  atomic.Pointer[redflag.FlagSet] // written by the loop, read by red_flag policies
	votes  []policy.Decision               // scratch: each policy's vote on one trace
	lastTh uint64                          // the threshold of the decision being carried out (noThreshold: none)
	// recordPolicy: kept spans name the policy that sampled (see record);
	// compNames and compRef are the composite sub-policies' names. Set by
	// newSampler, read-only after.
	recordPolicy bool
	compNames    []string
	compRef      map[string]uint32
	lastRec      uint32 // the record of the decision being carried out (0: none)
}

// forwarder is what was sampled on its way to the next consumer (forward.go).
type forwarder struct {
	next  consumer.Traces // not guarded
	out   []byte          // sampled spans waiting to be forwarded: (id, threshold, record, uvarint len, segment)*
	spare []byte          // a forwarded out's buffer, for reuse
}

// counters are gathered under mu while deciding and moved to the metrics and
// the counter sinks by flush (telemetry.go).
type counters struct {
	voteCounts  [][5]int64
	global      [5]int64
	evalErrors  int64
	early       map[string]int64
	latencies   []float64
	newTraces   int64
	tooLarge    int64
	lateSampled int64
	lateDropped int64

	// Not guarded by mu: the attribute sets are read-only after newSampler,
	// gauges is atomic, the rest belongs to flush (the decision loop, then
	// Shutdown after the loop ended).
	voteAttrs   [][5]metric.MeasurementOption
	globalAttrs [5]metric.MeasurementOption
	gauges      atomic.Pointer[gaugeValues]
	sinks       []counterSink
	totals      totals
	lastPublish time.Time
}

var _ processor.Traces = (*sampler)(nil)

func newSampler(set processor.Settings, cfg *Config, next consumer.Traces) (*sampler, error) {
	p := &sampler{cfg: cfg, id: set.ID, logger: set.Logger,
		lifecycle: lifecycle{stop: make(chan struct{}), done: make(chan struct{})},
		forwarder: forwarder{next: next}, counters: counters{early: map[string]int64{}}}
	b, err := cfg.buildPolicies(set.TelemetrySettings, &p.flags)
	if err != nil {
		return nil, err
	}
	p.policies, p.comp, p.redFlagStatus = b.Built, b.C, b.RedFlagStatus
	p.needSize = b.C.NeedsSize || cfg.MaximumTraceSizeBytes > 0
	p.spanIngest = cfg.SamplingStrategy == strategySpanIngest
	p.votes = make([]policy.Decision, len(p.policies))
	p.recordPolicy = cfg.RecordPolicy || recordPolicyGate.IsEnabled()
	p.compRef = map[string]uint32{}
	for _, pc := range cfg.Policies {
		if pc.Composite == nil {
			continue
		}
		for _, sc := range pc.Composite.SubPolicies {
			if _, ok := p.compRef[sc.Name]; !ok {
				p.compNames = append(p.compNames, sc.Name)
				p.compRef[sc.Name] = uint32(len(p.compNames))
			}
		}
	}
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
	sampledEntries := cacheEntries
	if p.recordPolicy {
		sampledEntries = int(p.budget / 16 / (cache.BytesPerEntry + cache.BytesPerTag))
	}
	p.sampled = newCache(cfg.DecisionCache.SampledCacheSize, sampledEntries)
	p.notSampled = newCache(cfg.DecisionCache.NonSampledCacheSize, cacheEntries)
	p.scratch.New = func() any { return &ingest{idx: map[[16]byte]int32{}} }
	p.gauges.Store(&gaugeValues{Budget: p.budget})
	if p.tel, err = newTelemetry(set.TelemetrySettings, &p.gauges); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *sampler) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

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
	p.tel.ProcessorTailSamplingSpansReceived.Add(ctx, int64(td.SpanCount()))
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
