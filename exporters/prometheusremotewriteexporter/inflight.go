package prometheusremotewriteexporter

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"
)

// The collector's persistent queue keeps the request being sent when the
// agent stops or is killed, and puts it back at the END of the queue when
// it starts again: its samples then reach Prometheus after newer ones of
// the same series, and Prometheus (without an out-of-order window) refuses
// them, whole batches at a time. So, with storage, the requests being sent
// are also written to the same storage extension, oldest first, before
// they are sent, and removed once through; after a restart they are sent
// first, before anything the queue holds. The queue's copies arrive later;
// they are recognised (the same batches: see cut) and not sent again.
//
// More than one can be pending: a run that stops while re-sending what the
// run before it left has both that and its own current request in flight.
const inflightKey = "requests"

// inflightEntry is one pending request: its include_metadata_keys headers
// and the request as OTLP protobuf.
type inflightEntry struct {
	headers []string
	md      []byte
}

func (a inflightEntry) equal(b inflightEntry) bool {
	return slices.Equal(a.headers, b.headers) && bytes.Equal(a.md, b.md)
}

// encodeInflight writes entries as: count, then per entry the number of
// header strings, each string, and the request, every length a uvarint.
func encodeInflight(entries []inflightEntry) []byte {
	b := binary.AppendUvarint(nil, uint64(len(entries)))
	for _, en := range entries {
		b = binary.AppendUvarint(b, uint64(len(en.headers)))
		for _, h := range en.headers {
			b = binary.AppendUvarint(b, uint64(len(h)))
			b = append(b, h...)
		}
		b = binary.AppendUvarint(b, uint64(len(en.md)))
		b = append(b, en.md...)
	}
	return b
}

// decodeInflight reads what encodeInflight wrote, refusing anything
// truncated, oversized or trailing.
func decodeInflight(b []byte) ([]inflightEntry, error) {
	next := func(what string) (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, fmt.Errorf("in-flight record: bad %s length", what)
		}
		b = b[n:]
		return v, nil
	}
	bytesOf := func(what string) ([]byte, error) {
		n, err := next(what)
		if err != nil {
			return nil, err
		}
		if n > uint64(len(b)) {
			return nil, fmt.Errorf("in-flight record: %s of %d bytes, %d left", what, n, len(b))
		}
		v := b[:n:n]
		b = b[n:]
		return v, nil
	}
	count, err := next("count")
	if err != nil {
		return nil, err
	}
	if count > uint64(len(b)) { // every entry takes two bytes at least
		return nil, fmt.Errorf("in-flight record: %d requests in %d bytes", count, len(b))
	}
	out := make([]inflightEntry, 0, count)
	for range count {
		nh, err := next("header count")
		if err != nil {
			return nil, err
		}
		if nh > uint64(len(b)) {
			return nil, fmt.Errorf("in-flight record: %d headers in %d bytes", nh, len(b))
		}
		var en inflightEntry
		for range nh {
			h, err := bytesOf("header")
			if err != nil {
				return nil, err
			}
			en.headers = append(en.headers, string(h))
		}
		if en.md, err = bytesOf("request"); err != nil {
			return nil, err
		}
		out = append(out, en)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("in-flight record: %d bytes after the last request", len(b))
	}
	return out, nil
}

// openInflight gets the storage client for the in-flight requests and
// reads those a stop or a crash left.
func (e *prwExporter) openInflight(ctx context.Context, host component.Host, id component.ID) error {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return fmt.Errorf("sending_queue: storage: extension %s is not configured", id)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return fmt.Errorf("sending_queue: storage: extension %s is not a storage extension", id)
	}
	c, err := se.GetClient(ctx, component.KindExporter, e.set.ID, "inflight")
	if err != nil {
		return fmt.Errorf("sending_queue: storage: %w", err)
	}
	e.inflight = c
	raw, err := c.Get(ctx, inflightKey)
	if err != nil {
		return fmt.Errorf("sending_queue: storage: cannot read the requests in flight at the last stop: %w", err)
	}
	if len(raw) == 0 {
		return nil
	}
	entries, err := decodeInflight(raw)
	if err != nil {
		// Not fatal: they are also in the queue, only later.
		e.set.Logger.Warn("The requests in flight at the last stop could not be read; they are sent from the queue only", zap.Error(err))
		return c.Delete(ctx, inflightKey)
	}
	e.pending, e.restored = entries, len(entries)
	e.set.Logger.Info("Sending first the requests in flight at the last stop", zap.Int("requests", len(entries)))
	return nil
}

// store writes the pending requests (or removes the record when none).
func (e *prwExporter) store(ctx context.Context) error {
	if len(e.pending) == 0 {
		return e.inflight.Delete(ctx, inflightKey)
	}
	return e.inflight.Set(ctx, inflightKey, encodeInflight(e.pending))
}

// pushInOrder sends the pending requests in order, md last, keeping them in
// storage until each is through. Without storage it sends md.
func (e *prwExporter) pushInOrder(ctx context.Context, md pmetric.Metrics, headers []string) error {
	if e.inflight == nil {
		return e.pushOne(ctx, md, headers)
	}
	var m pmetric.ProtoMarshaler
	raw, err := m.MarshalMetrics(md)
	if err != nil {
		return consumererror.NewPermanent(err)
	}
	cur := inflightEntry{headers: headers, md: raw}
	if n := len(e.pending); n == 0 || !e.pending[n-1].equal(cur) {
		// A new request (not a retry of the last). One queued earlier in
		// this run and still pending was given up by the retry sender
		// (max_elapsed_time): it goes, as the queue let it go.
		if n > e.restored {
			e.set.Logger.Warn("Remote write request given up by the retry sender; dropped from the in-flight record")
			e.pending = e.pending[:e.restored]
		}
		e.pending = append(e.pending, cur)
		if err := e.store(ctx); err != nil {
			e.pending = e.pending[:len(e.pending)-1]
			return fmt.Errorf("sending_queue: storage: cannot record the request in flight: %w", err)
		}
	}
	var u pmetric.ProtoUnmarshaler
	for len(e.pending) > 0 {
		p := e.pending[0]
		last := len(e.pending) == 1
		pmd := md
		if !last {
			if pmd, err = u.UnmarshalMetrics(p.md); err != nil {
				e.set.Logger.Warn("A request in flight at the last stop could not be read; it is sent from the queue only", zap.Error(err))
				err = consumererror.NewPermanent(err)
			}
		}
		if err == nil {
			err = e.pushOne(ctx, pmd, p.headers)
		}
		if err != nil && !consumererror.IsPermanent(err) {
			return err // the retry sender tries again, the oldest first
		}
		e.pending = e.pending[1:]
		e.restored = max(e.restored-1, 0)
		if serr := e.store(ctx); serr != nil {
			return errors.Join(err, serr)
		}
		if last {
			return err
		}
		err = nil
	}
	return nil
}

func (e *prwExporter) closeInflight(ctx context.Context) error {
	if e.inflight == nil {
		return nil
	}
	return e.inflight.Close(ctx)
}
