package redflagconnector

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/edges"
	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/metadata"
	"github.com/vigilhq/vigil/internal/redflag"
)

type signal int

const (
	signalTraces signal = iota
	signalLogs
	signalMetrics
)

// core is the state shared by every instance of one connector ID. The
// detector engine belongs to the loop goroutine; consumers hand it batches
// over a bounded channel; a second goroutine delivers outputs, so a slow
// downstream never stalls detection.
type core struct {
	cfg    *Config
	logger *zap.Logger
	tel    *metadata.TelemetryBuilder
	ext    *edges.Extractor
	mesh   *edges.Mesh // nil unless mesh.enabled
	eng    *detect.Engine
	clock  clockwork.Clock
	onDone func()

	mu         sync.Mutex
	metricsOut consumer.Metrics // nil: no metrics pipeline receives from it
	logsOut    consumer.Logs    // nil: no logs pipeline receives from it
	fed        [3]bool          // an instance already feeds this input signal
	refs       int
	started    bool
	stopped    bool
	status     redflag.Publisher

	batches chan work
	emits   chan emission
	stop    chan struct{}
	done    sync.WaitGroup
	pool    sync.Pool

	gauges      atomic.Pointer[gaugeValues]
	observed    [3]atomic.Int64      // spans, log records, data points fed to the detectors, by signal
	prevSeries  map[string]seriesRef // ALERTS series emitted at the last evaluation
	resource    map[string]string
	startedTime time.Time
}

type work struct {
	now time.Time
	b   *detect.Batch
}

type emission struct {
	md pmetric.Metrics
	ld plog.Logs
}

func newCore(set connector.Settings, cfg *Config, clock clockwork.Clock, onDone func()) (*core, error) {
	names := map[string]bool{"http.server.active_requests": true}
	for _, r := range cfg.Saturation.Rules {
		for _, n := range []string{r.Metric, r.Limit, r.Waiters, r.Timeouts} {
			if n != "" {
				names[n] = true
			}
		}
	}
	host, _ := os.Hostname()
	c := &core{
		cfg:    cfg,
		logger: set.Logger,
		ext: edges.New(edges.Settings{
			JoinSampleRatio: cfg.JoinSampleRatio, MaxJoinEntries: cfg.MaxJoinEntries, MetricNames: names,
		}),
		eng:        detect.New(cfg.Config),
		clock:      clock,
		onDone:     onDone,
		batches:    make(chan work, 64),
		emits:      make(chan emission, 4),
		stop:       make(chan struct{}),
		prevSeries: map[string]seriesRef{},
		resource:   map[string]string{"service.name": "vigil", "service.instance.id": host},
	}
	if cfg.Mesh.Enabled {
		c.mesh = edges.NewMesh(cfg.Mesh.MaxSeries)
	}
	c.pool.New = func() any { return new(detect.Batch) }
	c.gauges.Store(&gaugeValues{})
	tel, err := newTelemetry(set.TelemetrySettings, &c.gauges)
	if err != nil {
		return nil, err
	}
	c.tel = tel
	return c, nil
}

// addMetricsOut and addLogsOut keep the first consumer of each output
// signal. The collector builds one instance per (input, output) pair and
// hands every instance with the same output the same downstream pipelines
// (all those that list the connector as a receiver), so a second consumer is
// that same downstream again: delivering to it would duplicate every alert
// event and series (once per input signal).
func (c *core) addMetricsOut(m consumer.Metrics) {
	c.mu.Lock()
	if c.metricsOut == nil {
		c.metricsOut = m
	}
	c.mu.Unlock()
}

func (c *core) addLogsOut(l consumer.Logs) {
	c.mu.Lock()
	if c.logsOut == nil {
		c.logsOut = l
	}
	c.mu.Unlock()
}

// input returns the instance side for one input signal. The collector builds
// one instance per (input, output) pair and fans the same data out to each, so
// only the first instance of an input signal feeds the detectors.
func (c *core) input(s signal) *input {
	c.mu.Lock()
	defer c.mu.Unlock()
	feed := !c.fed[s]
	c.fed[s] = true
	return &input{c: c, feed: feed}
}

// input is one connector instance as the collector sees it.
type input struct {
	c    *core
	feed bool
}

func (in *input) Start(_ context.Context, host component.Host) error { return in.c.start(host) }

func (in *input) Shutdown(context.Context) error {
	in.c.shutdown()
	return nil
}

func (in *input) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

type tracesIn struct{ *input }

func (t *tracesIn) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	if !t.feed {
		return nil
	}
	c := t.c
	now := c.clock.Now()
	b := c.pool.Get().(*detect.Batch)
	c.ext.Traces(td, now, b)
	c.tel.ConnectorRedflagSpansReceived.Add(ctx, int64(td.SpanCount()))
	c.observed[signalTraces].Add(int64(td.SpanCount()))
	c.submit(ctx, work{now: now, b: b})
	return nil
}

type logsIn struct{ *input }

func (l *logsIn) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	if !l.feed {
		return nil
	}
	c := l.c
	b := c.pool.Get().(*detect.Batch)
	c.ext.Logs(ld, b)
	c.tel.ConnectorRedflagLogRecordsReceived.Add(ctx, int64(ld.LogRecordCount()))
	c.observed[signalLogs].Add(int64(ld.LogRecordCount()))
	c.submit(ctx, work{now: c.clock.Now(), b: b})
	return nil
}

type metricsIn struct{ *input }

func (m *metricsIn) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	if !m.feed {
		return nil
	}
	c := m.c
	b := c.pool.Get().(*detect.Batch)
	now := c.clock.Now()
	c.ext.Metrics(md, b)
	if c.mesh != nil {
		c.mesh.Metrics(md, now, b)
	}
	c.tel.ConnectorRedflagDatapointsReceived.Add(ctx, int64(md.DataPointCount()))
	c.observed[signalMetrics].Add(int64(md.DataPointCount()))
	c.submit(ctx, work{now: now, b: b})
	return nil
}

// submit hands a batch to the loop. A full channel means the loop is behind:
// the caller waits (backpressure, counted); it is dropped, and counted, only if
// the caller gives up or the connector stops. Detection never fails a pipeline.
func (c *core) submit(ctx context.Context, w work) {
	select {
	case c.batches <- w:
		return
	default:
	}
	c.tel.ConnectorRedflagBatchesBlocked.Add(ctx, 1)
	select {
	case c.batches <- w:
	case <-ctx.Done():
		c.tel.ConnectorRedflagBatchesDropped.Add(context.Background(), 1)
	case <-c.stop:
		c.tel.ConnectorRedflagBatchesDropped.Add(context.Background(), 1)
	}
}

func (c *core) start(host component.Host) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refs++
	if c.started {
		return nil
	}
	c.started = true
	c.startedTime = c.clock.Now()
	if c.cfg.Status != nil {
		sink, err := findPublisher(host, *c.cfg.Status)
		if err != nil {
			return err
		}
		c.status = sink
	}
	c.done.Add(2)
	go c.loop()
	go c.emitter()
	return nil
}

// shutdown stops the goroutines when the last instance shuts down; it is
// idempotent and safe without start.
func (c *core) shutdown() {
	c.mu.Lock()
	if c.refs > 0 {
		c.refs--
	}
	last := c.refs == 0 && c.started && !c.stopped
	if last {
		c.stopped = true
	}
	c.mu.Unlock()
	if !last {
		return
	}
	close(c.stop)
	c.done.Wait()
	c.tel.Shutdown()
	c.onDone()
}

func (c *core) loop() {
	defer c.done.Done()
	defer close(c.emits)
	ticker := c.clock.NewTicker(c.cfg.EvaluationInterval)
	defer ticker.Stop()
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		select {
		case <-c.stop:
			return
		case w := <-c.batches:
			c.eng.Apply(w.now, w.b)
			w.b.Reset()
			c.pool.Put(w.b)
		case now := <-ticker.Chan():
			c.evaluate(now)
		}
	}
}

func (c *core) evaluate(now time.Time) {
	t0 := time.Now()
	trs := c.eng.Evaluate(now)
	alerts := c.eng.Alerts()
	var ev emission
	c.mu.Lock()
	wantMetrics, wantLogs := c.metricsOut != nil, c.logsOut != nil
	status := c.status
	c.mu.Unlock()
	var edgeViews []detect.EdgeView
	var svcViews []detect.ServiceView
	if (wantMetrics && c.cfg.EdgeMetrics) || status != nil {
		edgeViews, svcViews = c.eng.Edges(), c.eng.Services()
	}
	if wantMetrics {
		ev.md = c.buildMetrics(now, alerts, edgeViews, svcViews)
	}
	if wantLogs && len(trs) > 0 {
		ev.ld = c.buildEvents(now, trs)
	}
	ctx := context.Background()
	for _, tr := range trs {
		c.tel.ConnectorRedflagAlertTransitions.Add(ctx, 1, metric.WithAttributes(
			attribute.String("alertname", tr.Alert.Name()), attribute.String("state", string(tr.Alert.State))))
		c.logger.Info("red flag", zap.String("alert", formatAlert(&tr.Alert)), zap.String("state", string(tr.Alert.State)),
			zap.String("summary", tr.Alert.Annotations["summary"]))
	}
	st, xs := c.eng.Stats(), c.ext.Stats()
	var pending, firing int64
	for i := range alerts {
		if alerts[i].State == detect.Firing {
			firing++
		} else {
			pending++
		}
	}
	g := &gaugeValues{
		Edges: int64(st.Edges), Services: int64(st.Services), Pending: pending, Firing: firing,
		EdgesOverflow: int64(st.EdgesOverflow), EdgesExpired: int64(st.EdgesExpired),
		JoinDropped: int64(xs.JoinDropped), JoinExpired: int64(xs.Expired), NoCallee: int64(xs.NoCallee),
	}
	if c.mesh != nil {
		ms := c.mesh.Stats()
		g.MeshPoints, g.MeshSeries, g.MeshDropped, g.MeshResets = int64(ms.Points), int64(ms.Series), int64(ms.Dropped), int64(ms.Resets)
	}
	c.gauges.Store(g)
	if status != nil {
		status.PublishRedFlags(c.snapshot(now, edgeViews, svcViews, alerts, map[string]int64{
			"spans_observed":       c.observed[signalTraces].Load(),
			"log_records_observed": c.observed[signalLogs].Load(),
			"datapoints_observed":  c.observed[signalMetrics].Load(),
			"edges":                g.Edges,
			"services":             g.Services,
			"alerts_pending":       g.Pending,
			"alerts_firing":        g.Firing,
			"edges_dropped":        g.EdgesOverflow,
			"edges_evicted":        g.EdgesExpired,
			"joins_dropped":        g.JoinDropped,
			"joins_expired":        g.JoinExpired,
			"spans_without_callee": g.NoCallee,
			"evaluation_us":        time.Since(t0).Microseconds(),
		}))
	}
	c.tel.ConnectorRedflagEvaluationDuration.Record(ctx, time.Since(t0).Seconds())
	if ev.md == (pmetric.Metrics{}) && ev.ld == (plog.Logs{}) {
		return
	}
	select {
	case c.emits <- ev:
	default:
		c.tel.ConnectorRedflagEmitsDropped.Add(ctx, 1)
	}
}

// emitter delivers outputs.
func (c *core) emitter() {
	defer c.done.Done()
	for ev := range c.emits {
		c.mu.Lock()
		mout, lout := c.metricsOut, c.logsOut
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.EvaluationInterval)
		if ev.md != (pmetric.Metrics{}) && mout != nil {
			if err := mout.ConsumeMetrics(ctx, ev.md); err != nil {
				c.logger.Warn("cannot deliver red-flag metrics", zap.Error(err))
			}
		}
		if ev.ld != (plog.Logs{}) && lout != nil {
			if err := lout.ConsumeLogs(ctx, ev.ld); err != nil {
				c.logger.Warn("cannot deliver red-flag alert events", zap.Error(err))
			}
		}
		cancel()
	}
}
