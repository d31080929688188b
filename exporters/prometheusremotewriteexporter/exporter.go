package prometheusremotewriteexporter

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/snappy"
	prometheustranslator "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/prometheus"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/prometheusremotewrite"
	"github.com/prometheus/otlptranslator"
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
	"github.com/vigilhq/vigil/internal/promrw"
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
	var batches []promrw.Batch
	if e.settings.SendMetadata {
		meta, _ := prometheusremotewrite.OtelMetricsToMetadata(md, e.settings)
		batches, err = promrw.Cut(series, meta, e.cfg.MaxBatchSizeBytes)
	} else {
		batches, err = promrw.Cut(series, nil, e.cfg.MaxBatchSizeBytes)
	}
	if err != nil {
		// Not a request a retry could mend.
		e.tb.ExporterPrometheusRemoteWriteSamplesRejected.Add(ctx, int64(md.DataPointCount()), e.attrs, metric.WithAttributes(attribute.String("reason", "encoding")))
		return consumererror.NewPermanent(fmt.Errorf("remote write batch could not be encoded: %w", err))
	}
	defer func() {
		for i := range batches {
			batches[i].Release()
		}
	}()
	if len(batches) == 0 {
		return nil
	}
	return e.send(ctx, batches, headers)
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
func (e *prwExporter) send(ctx context.Context, batches []promrw.Batch, headers []string) error {
	type job struct {
		b *promrw.Batch
		h uint64
	}
	var hh uint64
	if len(headers) > 0 {
		hh = xxhash.Sum64String(strings.Join(headers, "\xff"))
	}
	jobs := make([]job, 0, len(batches))
	id := xxhash.New()
	for i := range batches {
		h := xxhash.Sum64(batches[i].PB) ^ hh
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], h)
		_, _ = id.Write(b[:])
		jobs = append(jobs, job{&batches[i], h})
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
				outs[i] = e.post(ctx, todo[i].b, snappy.Encode(nil, todo[i].b.PB), headers)
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
		case o.refused != nil && !todo[i].b.Info:
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
	if len(refused) > 0 {
		return consumererror.NewPermanent(fmt.Errorf("%d of %d remote write batches refused for good (dropped): %w", len(refused), len(batches), errors.Join(refused...)))
	}
	return nil
}

// post sends one batch and says what became of it.
func (e *prwExporter) post(ctx context.Context, b *promrw.Batch, body []byte, headers []string) outcome {
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
		e.tb.ExporterPrometheusRemoteWriteSamplesSent.Add(ctx, b.Samples, e.attrs)
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
			zap.String("message", text), zap.Int("series", b.Series))
		e.reject(ctx, b, reason)
		return outcome{refused: fmt.Errorf("%s: %s", resp.Status, text)}
	}
}

// reject counts a batch's samples as refused for reason.
func (e *prwExporter) reject(ctx context.Context, b *promrw.Batch, reason string) {
	e.tb.ExporterPrometheusRemoteWriteSamplesRejected.Add(ctx, b.Samples, e.attrs, metric.WithAttributes(attribute.String("reason", reason)))
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
