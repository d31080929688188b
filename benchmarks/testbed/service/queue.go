package service

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The queue is a table in PostgreSQL (jobs): producers INSERT, consumers
// claim one row at a time with SELECT ... FOR UPDATE SKIP LOCKED. The spans
// follow the messaging semantic conventions by hand, with messaging.system
// "postgresql" (not a registered value; the conventions allow others); the
// W3C traceparent of the PRODUCER span travels in the row.

// messagingSystem is the messaging.system of the table-based queue.
const messagingSystem = "postgresql"

const (
	publishSQL = "INSERT INTO jobs (queue, payload, traceparent) VALUES ($1, $2, $3) RETURNING id"
	claimSQL   = `UPDATE jobs SET attempts = attempts + 1, visible_at = now() + interval '30 seconds'
WHERE id = (SELECT id FROM jobs WHERE queue = $1 AND visible_at <= now() ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING id, payload, traceparent, attempts`
	ackSQL   = "DELETE FROM jobs WHERE id = $1"
	retrySQL = "UPDATE jobs SET visible_at = now() + interval '2 seconds' WHERE id = $1"
	// maxAttempts is how often a job is tried before it is dropped.
	maxAttempts = 3
)

func (r *Replica) messagingAttrs(queue, op string, typ attribute.KeyValue) []attribute.KeyValue {
	return []attribute.KeyValue{
		semconv.MessagingSystemKey.String(messagingSystem),
		semconv.MessagingDestinationName(queue),
		typ,
		semconv.MessagingOperationName(op),
		semconv.ServerAddress(r.db.host),
		semconv.ServerPort(r.db.port),
	}
}

// publish enqueues a job for the request under a PRODUCER span.
func (r *Replica) publish(ctx context.Context, queue string, req request) error {
	ctx, span := r.tel.tracer.Start(ctx, "publish "+queue, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(r.messagingAttrs(queue, "publish", semconv.MessagingOperationTypeSend)...))
	defer span.End()
	carrier := propagation.MapCarrier{}
	r.tel.prop.Inject(ctx, carrier)
	payload, err := json.Marshal(req)
	if err != nil {
		return status.Errorf(grpccodes.Internal, "cannot encode job: %v", err)
	}
	id, err := r.db.queryInt(ctx, publishSQL, queue, payload, carrier.Get("traceparent"))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	span.SetAttributes(semconv.MessagingMessageID(strconv.FormatInt(id, 10)))
	return nil
}

type job struct {
	id          int64
	payload     []byte
	traceparent string
	attempts    int
}

// consume runs one consumer loop until ctx ends: claim a job, process it
// under a CONSUMER span (child of the producer's), acknowledge or retry it.
func (r *Replica) consume(ctx context.Context) {
	q := r.svc.Jobs
	for ctx.Err() == nil {
		j, ok, err := r.claim(ctx, q.Queue)
		switch {
		case err != nil:
			_ = sleep(ctx, 500*time.Millisecond)
			continue
		case !ok:
			_ = sleep(ctx, time.Duration(100+rand.IntN(100))*time.Millisecond)
			continue
		}
		r.process(ctx, q.Queue, j)
	}
}

// claim takes the oldest visible job. The statement runs outside any trace,
// so otelsql's span filter leaves it out (an idle poll every 100-200 ms).
func (r *Replica) claim(ctx context.Context, queue string) (job, bool, error) {
	var j job
	conn, err := r.db.acquire(ctx)
	if err != nil {
		return j, false, err
	}
	defer r.db.release(conn)
	err = conn.QueryRowContext(ctx, claimSQL, queue).Scan(&j.id, &j.payload, &j.traceparent, &j.attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return j, false, nil
	}
	if err != nil {
		return j, false, err
	}
	return j, true, nil
}

func (r *Replica) process(ctx context.Context, queue string, j job) {
	parent := r.tel.prop.Extract(context.WithoutCancel(ctx), propagation.MapCarrier{"traceparent": j.traceparent})
	attrs := append(r.messagingAttrs(queue, "process", semconv.MessagingOperationTypeProcess),
		semconv.MessagingMessageID(strconv.FormatInt(j.id, 10)))
	pctx, span := r.tel.tracer.Start(parent, "process "+queue, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
	defer span.End()
	pctx, cancel := context.WithTimeout(pctx, 10*time.Second)
	defer cancel()
	r.stats.jobs.Add(1)
	var req request
	if err := json.Unmarshal(j.payload, &req); err != nil {
		req.ID = strconv.FormatInt(j.id, 10)
	}
	err := r.handle(pctx, "process job "+strconv.FormatInt(j.id, 10), nil, r.svc.Jobs.Steps, req)
	stmt := ackSQL
	if err != nil {
		r.stats.jobsFailed.Add(1)
		span.RecordError(err)
		span.SetStatus(codes.Error, status.Convert(err).Message())
		if j.attempts < maxAttempts {
			stmt = retrySQL
		}
	}
	// Acknowledge under the consumer span, on a context that outlives a
	// shutdown so the row is not left claimed for 30 s.
	actx, acancel := context.WithTimeout(trace.ContextWithSpan(context.WithoutCancel(ctx), span), 2*time.Second)
	defer acancel()
	if err := r.db.exec(actx, stmt, j.id); err != nil {
		r.tel.log.WarnContext(actx, "cannot acknowledge job", "error", err.Error())
	}
}
