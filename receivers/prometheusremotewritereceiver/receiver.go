package prometheusremotewritereceiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/vigilhq/vigil/internal/promrw"
	"github.com/vigilhq/vigil/receivers/prometheusremotewritereceiver/internal/metadata"
)

// WritePath is the HTTP path remote-write clients post to.
const WritePath = "/api/v1/write"

// The remote write 2.0 response headers with the written counts.
const (
	headerSamplesWritten    = "X-Prometheus-Remote-Write-Samples-Written"
	headerHistogramsWritten = "X-Prometheus-Remote-Write-Histograms-Written"
	headerExemplarsWritten  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// Reject reasons, the values of the reason attribute of the rejects metric.
const (
	reasonMethod            = "method_not_allowed"
	reasonMediaType         = "unsupported_media_type"
	reasonTooLarge          = "too_large"
	reasonMalformed         = "malformed"
	reasonReadError         = "read_error"
	reasonInvalidSeries     = "invalid_series"
	reasonDroppedBySpec     = "dropped_by_spec"
	reasonRefusedDownstream = "refused_downstream"
	reasonRefusedPermanent  = "refused_permanent"
)

type prwReceiver struct {
	cfg  *Config
	set  receiver.Settings
	next consumer.Metrics
	tr   *promrw.Translator
	tb   *metadata.TelemetryBuilder
	obs  *receiverhelper.ObsReport

	server *http.Server
	done   chan struct{}
	// maxBody is the body limit in force: max_request_body_size, or
	// confighttp's default when unset.
	maxBody int64

	// bufs holds *[]byte for request bodies and decompressed payloads. A
	// buffer is owned by one request from Get to Put; nothing decoded from
	// it outlives the request (the decoder copies strings).
	bufs sync.Pool

	retryAfter string
	attrCache  sync.Map // attrKey -> metric.MeasurementOption
}

var _ receiver.Metrics = (*prwReceiver)(nil)

func newReceiver(set receiver.Settings, cfg *Config, next consumer.Metrics) (*prwReceiver, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, fmt.Errorf("cannot create telemetry: %w", err)
	}
	obs, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID: set.ID, Transport: "http", ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot create obsreport: %w", err)
	}
	return &prwReceiver{
		cfg: cfg, set: set, next: next, tb: tb, obs: obs,
		tr: promrw.NewTranslator(promrw.Options{
			MetadataCacheSize:   cfg.MetadataCacheSize,
			TargetInfoCacheSize: cfg.TargetInfoCacheSize,
			MaxNativeBuckets:    cfg.MaxNativeHistogramBuckets,
			ScopeName:           metadata.ScopeName,
			ScopeVersion:        set.BuildInfo.Version,
		}),
		retryAfter: strconv.Itoa(int((cfg.RetryAfter + time.Second - 1) / time.Second)),
		bufs:       sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }},
	}, nil
}

// Start listens on the configured endpoint and serves WritePath.
func (r *prwReceiver) Start(ctx context.Context, host component.Host) error {
	hc := r.cfg.ServerConfig
	hc.CompressionAlgorithms = []string{} // the handler decodes snappy itself, size first
	ln, err := hc.ToListener(ctx)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", hc.NetAddr.Endpoint, err)
	}
	mux := http.NewServeMux()
	mux.Handle(WritePath, r)
	srv, err := hc.ToServer(ctx, host.GetExtensions(), r.set.TelemetrySettings, mux)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("cannot create HTTP server: %w", err)
	}
	r.server, r.done, r.maxBody = srv, make(chan struct{}), hc.MaxRequestBodySize
	r.set.Logger.Info("Remote-write receiver listening", zap.String("endpoint", ln.Addr().String()), zap.String("path", WritePath))
	go func() {
		defer close(r.done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	}()
	return nil
}

// Shutdown stops the server, letting requests in flight finish until ctx
// ends. It is safe without Start and safe to call twice.
func (r *prwReceiver) Shutdown(ctx context.Context) error {
	if r.server == nil {
		return nil
	}
	err := r.server.Shutdown(ctx)
	<-r.done
	r.tb.Shutdown()
	return err
}

type attrKey struct {
	version string
	code    int
	reason  string
	kind    string
}

// opt returns the measurement option for an attribute set, computed once per
// distinct set rather than per request.
func (r *prwReceiver) opt(k attrKey) metric.MeasurementOption {
	if v, ok := r.attrCache.Load(k); ok {
		return v.(metric.MeasurementOption)
	}
	var kv []attribute.KeyValue
	if k.version != "" {
		kv = append(kv, attribute.String("version", k.version))
	}
	if k.code != 0 {
		kv = append(kv, attribute.Int("code", k.code))
	}
	if k.reason != "" {
		kv = append(kv, attribute.String("reason", k.reason))
	}
	if k.kind != "" {
		kv = append(kv, attribute.String("kind", k.kind))
	}
	o := metric.WithAttributeSet(attribute.NewSet(kv...))
	r.attrCache.Store(k, o)
	return o
}

// fail answers a refused request and counts it.
func (r *prwReceiver) fail(ctx context.Context, w http.ResponseWriter, version string, code int, reason string, err error) {
	r.tb.ReceiverPrometheusRemoteWriteRejects.Add(ctx, 1, r.opt(attrKey{reason: reason}))
	r.tb.ReceiverPrometheusRemoteWriteRequests.Add(ctx, 1, r.opt(attrKey{version: version, code: code}))
	if code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", r.retryAfter)
	}
	http.Error(w, err.Error(), code)
}

// ServeHTTP handles one remote-write request. Status codes follow what a
// Prometheus client does with them: 2xx done; 400/413/415 dropped, not
// retried (bad input never gets a 5xx); 503 with Retry-After retried later,
// used when the next consumer (memory_limiter, a full queue) refuses.
func (r *prwReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		r.fail(ctx, w, "unknown", http.StatusMethodNotAllowed, reasonMethod, errors.New("remote write takes POST"))
		return
	}
	ver, err := promrw.ParseContentType(req.Header.Get("Content-Type"))
	if err == nil {
		err = promrw.CheckEncoding(req.Header.Get("Content-Encoding"))
	}
	if err != nil {
		r.fail(ctx, w, "unknown", http.StatusUnsupportedMediaType, reasonMediaType, err)
		return
	}
	version := ver.String()
	start := time.Now()

	bodyBuf := r.bufs.Get().(*[]byte)
	defer r.putBuf(bodyBuf)
	body, err := readAll((*bodyBuf)[:0], req.Body)
	*bodyBuf = body[:0]
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			r.fail(ctx, w, version, http.StatusRequestEntityTooLarge, reasonTooLarge,
				fmt.Errorf("request body exceeds max_request_body_size %d bytes", r.maxBody))
			return
		}
		r.fail(ctx, w, version, http.StatusBadRequest, reasonReadError, fmt.Errorf("cannot read request body: %w", err))
		return
	}
	decBuf := r.bufs.Get().(*[]byte)
	defer r.putBuf(decBuf)
	payload, err := promrw.Decompress(*decBuf, body, int(min(r.cfg.MaxDecompressedSize, int64(^uint(0)>>1))))
	*decBuf = payload[:0]
	if err != nil {
		if errors.Is(err, promrw.ErrTooLarge) {
			r.fail(ctx, w, version, http.StatusRequestEntityTooLarge, reasonTooLarge, err)
		} else {
			r.fail(ctx, w, version, http.StatusBadRequest, reasonMalformed, err)
		}
		return
	}
	pr := promrw.GetRequest()
	if err := pr.Decode(ver, payload); err != nil {
		promrw.PutRequest(pr)
		r.fail(ctx, w, version, http.StatusBadRequest, reasonMalformed, err)
		return
	}
	md, st := r.tr.Translate(pr)
	promrw.PutRequest(pr)
	r.record(ctx, st, time.Since(start))

	if st.DataPoints > 0 {
		octx := r.obs.StartMetricsOp(ctx)
		err = r.next.ConsumeMetrics(octx, md)
		r.obs.EndMetricsOp(octx, metadata.Type.String(), st.DataPoints, err)
		if err != nil {
			if ver == promrw.V2 {
				writeCounts(w, 0, 0, 0)
			}
			if consumererror.IsPermanent(err) {
				r.fail(ctx, w, version, http.StatusBadRequest, reasonRefusedPermanent, fmt.Errorf("pipeline refused the data permanently: %w", err))
				return
			}
			r.fail(ctx, w, version, http.StatusServiceUnavailable, reasonRefusedDownstream, fmt.Errorf("pipeline refused the data, retry later: %w", err))
			return
		}
	}
	if ver == promrw.V2 {
		writeCounts(w, st.WrittenSamples, st.WrittenHistograms, st.WrittenExemplars)
	}
	if st.InvalidSeries > 0 {
		// The valid series went on; like Prometheus' receiver, answer 400 so
		// the client drops (does not retry) the batch, and say why.
		r.tb.ReceiverPrometheusRemoteWriteRequests.Add(ctx, 1, r.opt(attrKey{version: version, code: http.StatusBadRequest}))
		http.Error(w, fmt.Sprintf("%d of %d series refused; first: %v", st.InvalidSeries, st.Series, st.FirstInvalid), http.StatusBadRequest)
		return
	}
	r.tb.ReceiverPrometheusRemoteWriteRequests.Add(ctx, 1, r.opt(attrKey{version: version, code: http.StatusNoContent}))
	w.WriteHeader(http.StatusNoContent)
}

// maxPooledBuf keeps the occasional huge request from pinning its buffer.
const maxPooledBuf = 4 << 20

func (r *prwReceiver) putBuf(b *[]byte) {
	if cap(*b) <= maxPooledBuf {
		r.bufs.Put(b)
	}
}

func writeCounts(w http.ResponseWriter, samples, histograms, exemplars int) {
	h := w.Header()
	h.Set(headerSamplesWritten, strconv.Itoa(samples))
	h.Set(headerHistogramsWritten, strconv.Itoa(histograms))
	h.Set(headerExemplarsWritten, strconv.Itoa(exemplars))
}

// record counts one decoded request in the receiver's own metrics: once per
// request, with attribute sets computed once.
func (r *prwReceiver) record(ctx context.Context, st promrw.Stats, took time.Duration) {
	tb := r.tb
	tb.ReceiverPrometheusRemoteWriteDecodeDuration.Record(ctx, took.Seconds())
	tb.ReceiverPrometheusRemoteWriteSeries.Add(ctx, int64(st.Series))
	if st.Samples > 0 {
		tb.ReceiverPrometheusRemoteWriteSamples.Add(ctx, int64(st.Samples), r.opt(attrKey{kind: "float"}))
	}
	if st.Histograms > 0 {
		tb.ReceiverPrometheusRemoteWriteSamples.Add(ctx, int64(st.Histograms), r.opt(attrKey{kind: "histogram"}))
	}
	if st.Exemplars > 0 {
		tb.ReceiverPrometheusRemoteWriteSamples.Add(ctx, int64(st.Exemplars), r.opt(attrKey{kind: "exemplar"}))
	}
	if st.InvalidSeries > 0 {
		tb.ReceiverPrometheusRemoteWriteRejects.Add(ctx, int64(st.InvalidSeries), r.opt(attrKey{reason: reasonInvalidSeries}))
	}
	if st.Dropped > 0 {
		tb.ReceiverPrometheusRemoteWriteRejects.Add(ctx, int64(st.Dropped), r.opt(attrKey{reason: reasonDroppedBySpec}))
	}
	if st.Split > 0 {
		tb.ReceiverPrometheusRemoteWriteSplitPoints.Add(ctx, int64(st.Split))
	}
	m, t := r.tr.CacheEntries()
	tb.ReceiverPrometheusRemoteWriteCacheEntries.Record(ctx, int64(m), r.opt(attrKey{kind: "metadata"}))
	tb.ReceiverPrometheusRemoteWriteCacheEntries.Record(ctx, int64(t), r.opt(attrKey{kind: "target_info"}))
}

// readAll reads r to EOF into dst's capacity, growing it as needed.
func readAll(dst []byte, rd io.Reader) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := rd.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}
