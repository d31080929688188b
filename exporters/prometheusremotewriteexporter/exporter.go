package prometheusremotewriteexporter

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/snappy"
	prometheustranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/prometheus"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/prometheusremotewrite"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/vigilhq/vigil/exporters/prometheusremotewriteexporter/internal/metadata"
)

// exporter sends one request (a pmetric.Metrics off the queue) at a time.
type prwExporter struct {
	cfg       *Config
	set       exporter.Settings
	endpoint  string
	userAgent string
	settings  prometheusremotewrite.Settings
	parallel  int
	client    *http.Client
	tb        *metadata.TelemetryBuilder
	attrs     metric.MeasurementOption

	// acked holds the batches of the current request an endpoint accepted
	// (or refused for good), by a hash of their bytes, so a retry sends only
	// the rest: a batch sent again once newer samples of its series are in
	// is refused whole as out of order. reqID identifies that request (its
	// batches' hashes and headers together); done are the last requests
	// sent whole, so a copy of one (the queue's, after a restart sent it
	// from the in-flight record) is not sent again.
	acked map[uint64]bool
	reqID uint64
	done  doneRing

	// inflight, with sending_queue's storage, holds the requests being sent
	// (see inflight.go): pending, oldest first; restored is how many of them
	// a previous run left.
	inflight storage.Client
	pending  []inflightEntry
	restored int
}

func newExporter(c *Config, set exporter.Settings) (*prwExporter, error) {
	u, err := url.ParseRequestURI(c.HTTP.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", c.HTTP.Endpoint, err)
	}
	labels, err := externalLabels(c)
	if err != nil {
		return nil, err
	}
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	return &prwExporter{
		cfg:       c,
		set:       set,
		endpoint:  u.String(),
		userAgent: strings.ReplaceAll(strings.ToLower(set.BuildInfo.Description), " ", "-") + "/" + set.BuildInfo.Version,
		settings: prometheusremotewrite.Settings{
			Namespace:                       c.Namespace,
			ExternalLabels:                  labels,
			DisableTargetInfo:               !c.TargetInfo.Enabled,
			DisableScopeInfo:                c.DisableScopeInfo,
			AddMetricSuffixes:               c.AddMetricSuffixes, //nolint:staticcheck // upstream's deprecated key, still honoured
			TranslationStrategy:             string(c.TranslationStrategy),
			SendMetadata:                    c.SendMetadata,
			ConvertExplicitHistogramsToNHCB: c.ConvertExplicitHistogramsToNHCB,
			KeepClassicHistograms:           c.KeepClassicHistograms,
		},
		parallel: parallelism(c),
		tb:       tb,
		attrs:    metric.WithAttributeSet(attribute.NewSet(attribute.String("exporter", set.ID.String()))),
		acked:    map[uint64]bool{},
	}, nil
}

// externalLabels are the configured external labels with names made valid,
// as upstream makes them (remote write 1.0 carries no UTF-8 names).
func externalLabels(c *Config) (map[string]string, error) {
	// As upstream names them, its sanitization gate included.
	permissive := prometheustranslator.DropSanitizationGate.IsEnabled()
	namer := otlptranslator.LabelNamer{UnderscoreLabelSanitization: !permissive, PreserveMultipleUnderscores: permissive} //nolint:staticcheck // upstream's sanitization
	out := make(map[string]string, len(c.ExternalLabels))
	for k, v := range c.ExternalLabels {
		if k == "" || v == "" {
			return nil, fmt.Errorf("external_labels: empty name or value (%q: %q)", k, v)
		}
		name, err := namer.Build(k)
		if err != nil {
			return nil, fmt.Errorf("external_labels: %q: %w", k, err)
		}
		out[name] = v
	}
	return out, nil
}

func (e *prwExporter) start(ctx context.Context, host component.Host) error {
	var err error
	e.client, err = e.cfg.HTTP.ToClient(ctx, host.GetExtensions(), e.set.TelemetrySettings)
	if err != nil {
		return err
	}
	if q := e.cfg.SendingQueue.Get(); q != nil && q.StorageID != nil {
		return e.openInflight(ctx, host, *q.StorageID)
	}
	return nil
}

func (e *prwExporter) shutdown(ctx context.Context) error {
	if e.tb != nil {
		e.tb.Shutdown()
	}
	return e.closeInflight(ctx)
}

// push sends a request off the queue: what a previous run left in flight
// first, when there is any.
func (e *prwExporter) push(ctx context.Context, md pmetric.Metrics) error {
	return e.pushInOrder(ctx, md, e.headersOf(ctx))
}

// headersOf are the include_metadata_keys headers of a request: name,
// value pairs from its client metadata.
func (e *prwExporter) headersOf(ctx context.Context) []string {
	if len(e.cfg.IncludeMetadataKeys) == 0 {
		return nil
	}
	info := client.FromContext(ctx).Metadata
	var h []string
	for _, k := range e.cfg.IncludeMetadataKeys {
		for _, v := range info.Get(k) {
			h = append(h, k, v)
		}
	}
	return h
}

// pushOne converts md with upstream's translator and sends it in batches
// with headers.
func (e *prwExporter) pushOne(ctx context.Context, md pmetric.Metrics, headers []string) error {
	series, err := prometheusremotewrite.FromMetrics(md, e.settings)
	if err != nil {
		// Points that did convert are still sent, as upstream does.
		e.tb.ExporterPrometheusRemoteWriteTranslationFailures.Add(ctx, 1, e.attrs)
		e.set.Logger.Debug("Some metrics could not be converted to remote write", zap.Error(err), zap.Int("series", len(series)))
	}
	var meta []*prompb.MetricMetadata
	if e.settings.SendMetadata {
		meta, _ = prometheusremotewrite.OtelMetricsToMetadata(md, e.settings)
	}
	batches := cut(series, meta, e.cfg.MaxBatchSizeBytes)
	if len(batches) == 0 {
		return nil
	}
	return e.send(ctx, batches, headers)
}

// cut splits a request into write requests of at most maxBytes (a series
// larger than that goes alone), deterministically: series in the order of
// their label signatures, each series' samples in time order. The same
// request is therefore cut the same way when it is sent again, after a
// retry or from a persistent queue after a crash, and every batch is either
// wholly at the endpoint or not at all. Metadata goes last, in its own
// batches.
func cut(series map[string]*prompb.TimeSeries, meta []*prompb.MetricMetadata, maxBytes int) []*prompb.WriteRequest {
	// The translator's keys are positions in an order of its own (a map's):
	// order by the labels' hash, and the labels themselves on a tie.
	type keyed struct {
		h  uint64
		ts *prompb.TimeSeries
	}
	all := make([]keyed, 0, len(series))
	var info []keyed
	buf := make([]byte, 0, 1024)
	for _, ts := range series {
		buf = buf[:0]
		for i := range ts.Labels {
			l := &ts.Labels[i]
			buf = append(append(append(append(buf, l.Name...), 0xff), l.Value...), 0xff)
		}
		if isTargetInfo(ts) {
			info = append(info, keyed{xxhash.Sum64(buf), ts})
			continue
		}
		all = append(all, keyed{xxhash.Sum64(buf), ts})
	}
	byKey := func(a, b keyed) int {
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		return slices.CompareFunc(a.ts.Labels, b.ts.Labels, func(x, y prompb.Label) int {
			return cmp.Or(strings.Compare(x.Name, y.Name), strings.Compare(x.Value, y.Value))
		})
	}
	slices.SortFunc(all, byKey)
	// target_info series go in batches of their own, after the data: the
	// translator stamps them with the newest sample of their resource in a
	// request, which can go back in time from one request to the next
	// (Prometheus's remote-write shards send a target's series in parallel),
	// and an out-of-order target_info must not take data with it.
	slices.SortFunc(info, byKey)
	nData := len(all)
	all = append(all, info...)
	// Where batches end, then each batch's series copied once.
	var ends []int
	size := 0
	for i, k := range all {
		ts := k.ts
		if !sort.SliceIsSorted(ts.Samples, func(a, b int) bool { return ts.Samples[a].Timestamp < ts.Samples[b].Timestamp }) {
			slices.SortStableFunc(ts.Samples, func(a, b prompb.Sample) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
		}
		if len(ts.Histograms) > 1 {
			slices.SortStableFunc(ts.Histograms, func(a, b prompb.Histogram) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
		}
		n := sizeOf(ts)
		if i > 0 && (size+n >= maxBytes || i == nData) {
			ends = append(ends, i)
			size = 0
		}
		size += n
	}
	ends = append(ends, len(all))
	out := make([]*prompb.WriteRequest, 0, len(ends)+1)
	start := 0
	for _, end := range ends {
		if end == start {
			continue
		}
		cur := make([]prompb.TimeSeries, end-start)
		for i, k := range all[start:end] {
			cur[i] = *k.ts
		}
		out = append(out, &prompb.WriteRequest{Timeseries: cur})
		start = end
	}
	var md []prompb.MetricMetadata
	size = 0
	for _, m := range meta {
		n := m.Size()
		if len(md) > 0 && size+n >= maxBytes {
			out = append(out, &prompb.WriteRequest{Metadata: md})
			md, size = nil, 0
		}
		md = append(md, *m)
		size += n
	}
	if len(md) > 0 {
		out = append(out, &prompb.WriteRequest{Metadata: md})
	}
	return out
}

// infoBatch reports whether a batch is one of target_info series (cut puts
// them apart): refused, it is counted, and the request still succeeds.
func infoBatch(wr *prompb.WriteRequest) bool {
	return len(wr.Timeseries) > 0 && isTargetInfo(&wr.Timeseries[0])
}

// isTargetInfo reports whether a series is a target_info one.
func isTargetInfo(ts *prompb.TimeSeries) bool {
	for i := range ts.Labels {
		if ts.Labels[i].Name == "__name__" {
			return ts.Labels[i].Value == "target_info"
		}
	}
	return false
}

// sizeOf is a series' encoded size, or a little more: exact for native
// histograms and exemplars, an upper bound from the labels' lengths and the
// samples' count otherwise (computing it exactly costs as much again as
// encoding, which computes it anyway).
func sizeOf(ts *prompb.TimeSeries) int {
	if len(ts.Histograms) > 0 || len(ts.Exemplars) > 0 {
		return ts.Size()
	}
	n := 8 + 20*len(ts.Samples)
	for _, l := range ts.Labels {
		n += len(l.Name) + len(l.Value) + 8
	}
	return n
}

// bufs recycles the buffers batches are marshalled into (a request's are
// all held until it is sent).
var bufs sync.Pool

func marshal(wr *prompb.WriteRequest) ([]byte, error) {
	n := wr.Size()
	var b []byte
	if p, ok := bufs.Get().(*[]byte); ok && cap(*p) >= n {
		b = (*p)[:n]
	} else {
		b = make([]byte, n)
	}
	m, err := wr.MarshalToSizedBuffer(b)
	if err != nil {
		return nil, err
	}
	return b[n-m:], nil
}

func putBuf(b []byte) {
	if cap(b) > 0 && cap(b) <= 16<<20 {
		b = b[:0]
		bufs.Put(&b)
	}
}

// outcome is what became of one batch.
type outcome struct {
	retry      error         // retryable failure (5xx, 429, connection)
	retryAfter time.Duration // the server's Retry-After, if any
	refused    error         // refused for good (other 4xx): dropped
}

// send sends the batches of one request not yet accepted, parallel at
// most at once. It returns a retryable error (with the longest Retry-After)
// when any batch must be sent again, and a permanent one when an endpoint
// refused some for good (they are dropped and counted).
func (e *prwExporter) send(ctx context.Context, batches []*prompb.WriteRequest, headers []string) error {
	type job struct {
		wr *prompb.WriteRequest
		pb []byte
		h  uint64
	}
	var hh uint64
	if len(headers) > 0 {
		hh = xxhash.Sum64String(strings.Join(headers, "\xff"))
	}
	jobs := make([]job, 0, len(batches))
	id := xxhash.New()
	var encErrs []error
	defer func() {
		for _, j := range jobs {
			putBuf(j.pb)
		}
	}()
	for _, wr := range batches {
		pb, err := marshal(wr)
		if err != nil {
			// Not a request a retry could mend.
			e.reject(ctx, wr, "encoding")
			encErrs = append(encErrs, err)
			continue
		}
		h := xxhash.Sum64(pb) ^ hh
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], h)
		_, _ = id.Write(b[:])
		jobs = append(jobs, job{wr, pb, h})
	}
	reqID := id.Sum64()
	if e.done.has(reqID) {
		// Sent whole already: the queue's copy of a request a restart sent
		// first from the in-flight record.
		e.tb.ExporterPrometheusRemoteWriteBatchesSkipped.Add(ctx, int64(len(jobs)), e.attrs)
		return nil
	}
	if reqID != e.reqID {
		clear(e.acked)
		e.reqID = reqID
	}
	todo := jobs[:0:0]
	for _, j := range jobs {
		if e.acked[j.h] {
			e.tb.ExporterPrometheusRemoteWriteBatchesSkipped.Add(ctx, 1, e.attrs)
			continue
		}
		todo = append(todo, j)
	}
	outs := make([]outcome, len(todo))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(e.parallel, len(todo)) {
		wg.Go(func() {
			for i := range next {
				// A new buffer per request: the transport may still read a
				// body after Do returns.
				outs[i] = e.post(ctx, todo[i].wr, snappy.Encode(nil, todo[i].pb), headers)
			}
		})
	}
	for i := range todo {
		next <- i
	}
	close(next)
	wg.Wait()

	var retry, refused []error
	var wait time.Duration
	for i, o := range outs {
		switch {
		case o.retry != nil:
			retry = append(retry, o.retry)
			wait = max(wait, o.retryAfter)
			continue
		case o.refused != nil && !infoBatch(todo[i].wr):
			refused = append(refused, o.refused)
		}
		e.acked[todo[i].h] = true
	}
	if len(retry) > 0 {
		err := fmt.Errorf("%d of %d remote write batches to be sent again: %w", len(retry), len(batches), errors.Join(retry...))
		if wait > 0 {
			return exporterhelper.NewThrottleRetry(err, wait)
		}
		return err
	}
	e.done.add(reqID)
	if refused = append(refused, encErrs...); len(refused) > 0 {
		return consumererror.NewPermanent(fmt.Errorf("%d of %d remote write batches refused for good (dropped): %w", len(refused), len(batches), errors.Join(refused...)))
	}
	return nil
}

// post sends one batch and says what became of it.
func (e *prwExporter) post(ctx context.Context, wr *prompb.WriteRequest, body []byte, headers []string) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		return outcome{retry: err}
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("User-Agent", e.userAgent)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	start := time.Now()
	resp, err := e.client.Do(req)
	if err != nil {
		e.tb.ExporterPrometheusRemoteWriteRequests.Add(ctx, 1, e.attrs, metric.WithAttributes(attribute.String("code", "error")))
		return outcome{retry: err}
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	e.tb.ExporterPrometheusRemoteWriteRequestDuration.Record(ctx, time.Since(start).Seconds(), e.attrs)
	e.tb.ExporterPrometheusRemoteWriteRequests.Add(ctx, 1, e.attrs, metric.WithAttributes(attribute.String("code", strconv.Itoa(resp.StatusCode))))
	switch c := resp.StatusCode; {
	case c/100 == 2:
		s, hs := samples(wr)
		e.tb.ExporterPrometheusRemoteWriteSamplesSent.Add(ctx, s+hs, e.attrs)
		return outcome{}
	case c/100 == 5 || c == http.StatusTooManyRequests:
		return outcome{
			retry:      fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg))),
			retryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()),
		}
	default:
		// The endpoint will refuse it again: dropped, counted, and logged
		// with its reason (an out-of-order sample refuses a whole batch).
		reason := "rejected"
		if isOutOfOrder(string(msg)) {
			reason = "out_of_order"
		}
		text := strings.TrimSpace(string(msg))
		e.set.Logger.Warn("Remote write batch refused by the endpoint; dropped",
			zap.String("endpoint", e.endpoint), zap.Int("status_code", c), zap.String("reason", reason),
			zap.String("message", text), zap.Int("series", len(wr.Timeseries)))
		e.reject(ctx, wr, reason)
		return outcome{refused: fmt.Errorf("%s: %s", resp.Status, text)}
	}
}

// reject counts a batch's samples as refused for reason.
func (e *prwExporter) reject(ctx context.Context, wr *prompb.WriteRequest, reason string) {
	s, hs := samples(wr)
	e.tb.ExporterPrometheusRemoteWriteSamplesRejected.Add(ctx, s+hs, e.attrs, metric.WithAttributes(attribute.String("reason", reason)))
}

// samples counts a batch's float samples and native histogram samples.
func samples(wr *prompb.WriteRequest) (s, hs int64) {
	for i := range wr.Timeseries {
		s += int64(len(wr.Timeseries[i].Samples))
		hs += int64(len(wr.Timeseries[i].Histograms))
	}
	return s, hs
}

// isOutOfOrder reports whether Prometheus refused a batch for a sample older
// than (or at the time of, with another value) one it has: after a crash, a
// batch accepted before it is sent again and refused so.
func isOutOfOrder(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "out of order") || strings.Contains(m, "duplicate sample") || strings.Contains(m, "too old")
}

// retryAfter parses a Retry-After header: seconds or an HTTP date; 0 when
// absent or invalid. It is capped at a minute: the retry sender gives a
// request up when the wait would pass its max_elapsed_time.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Minute)
}

// doneRing holds the IDs of the last requests sent whole.
type doneRing struct {
	ids  [64]uint64
	next int
}

func (d *doneRing) has(id uint64) bool { return slices.Contains(d.ids[:], id) && id != 0 }

func (d *doneRing) add(id uint64) {
	d.ids[d.next] = id
	d.next = (d.next + 1) % len(d.ids)
}
