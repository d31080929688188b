package containerlogreceiver

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/vigilhq/vigil/receivers/containerlogreceiver/internal/metadata"
)

// telemetry is the receiver's own counts. The read loop adds to atomics
// (no metrics SDK call per line); the SDK reads them when it collects.
type telemetry struct {
	bytes, delivered, dropped, split, parseFailed, skipped atomic.Int64
	rotated, truncated, removed                            atomic.Int64
	retries, checkpointErrors                              atomic.Int64
}

var (
	outcomeDelivered   = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "delivered")))
	outcomeDropped     = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "dropped")))
	outcomeSplit       = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "split")))
	outcomeParseFailed = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "parse_failed")))
	outcomeSkipped     = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "skipped")))
	kindRotated        = metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", "rotated")))
	kindTruncated      = metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", "truncated")))
	kindRemoved        = metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", "removed")))
	stateOpen          = metric.WithAttributeSet(attribute.NewSet(attribute.String("state", "open")))
	stateLimit         = metric.WithAttributeSet(attribute.NewSet(attribute.String("state", "limit")))
	limitReadBuffer    = metric.WithAttributeSet(attribute.NewSet(attribute.String("limit", "read_buffer")))
	limitMaxLogSize    = metric.WithAttributeSet(attribute.NewSet(attribute.String("limit", "max_log_size")))
	limitBatch         = metric.WithAttributeSet(attribute.NewSet(attribute.String("limit", "batch")))
)

func newTelemetry(tb *metadata.TelemetryBuilder, r *logReceiver) (*telemetry, error) {
	t := &telemetry{}
	err := tb.RegisterReceiverContainerLogBytesCallback(func(_ context.Context, o metric.Int64Observer) error {
		o.Observe(t.bytes.Load())
		return nil
	})
	if err == nil {
		err = tb.RegisterReceiverContainerLogLinesCallback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(t.delivered.Load(), outcomeDelivered)
			o.Observe(t.dropped.Load(), outcomeDropped)
			o.Observe(t.split.Load(), outcomeSplit)
			o.Observe(t.parseFailed.Load(), outcomeParseFailed)
			o.Observe(t.skipped.Load(), outcomeSkipped)
			return nil
		})
	}
	if err == nil {
		err = tb.RegisterReceiverContainerLogRotationsCallback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(t.rotated.Load(), kindRotated)
			o.Observe(t.truncated.Load(), kindTruncated)
			o.Observe(t.removed.Load(), kindRemoved)
			return nil
		})
	}
	if err == nil {
		err = tb.RegisterReceiverContainerLogRetriesCallback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(t.retries.Load())
			return nil
		})
	}
	if err == nil {
		err = tb.RegisterReceiverContainerLogCheckpointErrorsCallback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(t.checkpointErrors.Load())
			return nil
		})
	}
	if err == nil {
		err = tb.RegisterReceiverContainerLogFilesCallback(func(_ context.Context, o metric.Int64Observer) error {
			r.mu.Lock()
			open := r.open
			r.mu.Unlock()
			o.Observe(int64(open), stateOpen)
			o.Observe(int64(r.cfg.MaxOpenFiles), stateLimit)
			return nil
		})
	}
	if err == nil {
		err = tb.RegisterReceiverContainerLogLimitsCallback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(r.cfg.ReadBufferSize), limitReadBuffer)
			o.Observe(int64(r.cfg.MaxLogSize), limitMaxLogSize)
			o.Observe(int64(r.cfg.BatchSize), limitBatch)
			return nil
		})
	}
	return t, err
}
