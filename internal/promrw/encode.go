package promrw

import (
	"cmp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/prompb"
)

// The encoding side, for Vigil's prometheus_remote_write exporter: the
// series its translator made, cut into remote-write 1.0 request bodies.

// Batch is one remote-write 1.0 request body (protobuf, not compressed) and
// what it holds.
type Batch struct {
	// PB is the encoded WriteRequest; Release gives its buffer back.
	PB []byte
	// Series, Samples: its series, and their float and native histogram
	// samples.
	Series  int
	Samples int64
	// Info: it holds target_info series only (they go apart, see Cut).
	Info bool
}

// Release returns the batch's buffer for reuse; PB must not be used after.
func (b *Batch) Release() {
	if cap(b.PB) > 0 && cap(b.PB) <= 16<<20 {
		p := b.PB[:0]
		bufs.Put(&p)
	}
	b.PB = nil
}

// Cut splits a request's series and metadata into encoded batches of at
// most about maxBytes, deterministically (see cutRequests). On an encoding
// error the batches made so far are released.
func Cut(series map[string]*prompb.TimeSeries, meta []*prompb.MetricMetadata, maxBytes int) ([]Batch, error) {
	wrs := cutRequests(series, meta, maxBytes)
	out := make([]Batch, 0, len(wrs))
	for _, wr := range wrs {
		pb, err := marshal(wr)
		if err != nil {
			for i := range out {
				out[i].Release()
			}
			return nil, err
		}
		s, hs := samples(wr)
		out = append(out, Batch{PB: pb, Series: len(wr.Timeseries), Samples: s + hs,
			Info: len(wr.Timeseries) > 0 && isTargetInfo(&wr.Timeseries[0])})
	}
	return out, nil
}

// cutRequests splits a request into write requests of at most maxBytes (a series
// larger than that goes alone), deterministically: series in the order of
// their label signatures, each series' samples in time order. The same
// request is therefore cut the same way when it is sent again, after a
// retry or from a persistent queue after a crash, and every batch is either
// wholly at the endpoint or not at all. Metadata goes last, in its own
// batches.
func cutRequests(series map[string]*prompb.TimeSeries, meta []*prompb.MetricMetadata, maxBytes int) []*prompb.WriteRequest {
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

// samples counts a batch's float samples and native histogram samples.
func samples(wr *prompb.WriteRequest) (s, hs int64) {
	for i := range wr.Timeseries {
		s += int64(len(wr.Timeseries[i].Samples))
		hs += int64(len(wr.Timeseries[i].Histograms))
	}
	return s, hs
}
