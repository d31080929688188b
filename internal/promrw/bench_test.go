package promrw

import (
	"fmt"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// benchRequest is a realistic remote-write batch: 2000 series of one sample
// each, 20 labels per series, as a Prometheus scraping 10 targets sends
// them: counters and gauges plus classic histograms (10 buckets, _sum,
// _count), with metadata known from an earlier request.
func benchRequest() (*prompb.WriteRequest, []prompb.MetricMetadata) {
	const targets, series = 10, 2000
	req := &prompb.WriteRequest{}
	var meta []prompb.MetricMetadata
	bounds := []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"}
	common := func(tgt, i int) []prompb.Label {
		ls := []prompb.Label{
			{Name: "instance", Value: fmt.Sprintf("10.1.%d.%d:9100", tgt, tgt*7)},
			{Name: "job", Value: "kubernetes-pods"},
			{Name: "namespace", Value: "shop-prod"},
			{Name: "pod", Value: fmt.Sprintf("checkout-7d9f8b6c5-%05d", tgt)},
			{Name: "container", Value: "checkout"},
			{Name: "node", Value: fmt.Sprintf("ip-10-1-%d-17.eu-west-1.compute.internal", tgt)},
			{Name: "app_kubernetes_io_name", Value: "checkout"},
			{Name: "app_kubernetes_io_version", Value: "1.42.7"},
			{Name: "pod_template_hash", Value: "7d9f8b6c5"},
			{Name: "cluster", Value: "prod-eu-1"},
			{Name: "region", Value: "eu-west-1"},
			{Name: "zone", Value: fmt.Sprintf("eu-west-1%c", 'a'+tgt%3)},
			{Name: "team", Value: "payments"},
			{Name: "tier", Value: "backend"},
			{Name: "env", Value: "production"},
			{Name: "method", Value: []string{"GET", "POST", "PUT", "DELETE"}[i%4]},
			{Name: "route", Value: fmt.Sprintf("/api/v1/resource%d", i%25)},
		}
		return ls
	}
	ts := int64(1767323045000)
	n := 0
	for tgt := 0; n < series; tgt = (tgt + 1) % targets {
		for m := 0; m < 10 && n < series; m++ {
			name := fmt.Sprintf("http_requests_%d_total", m)
			ls := append(common(tgt, n), prompb.Label{Name: "__name__", Value: name}, prompb.Label{Name: "code", Value: fmt.Sprint(200 + m%5)})
			sortLabels(ls)
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: float64(n * 3), Timestamp: ts}}})
			n++
		}
		for m := 0; m < 5 && n < series; m++ {
			name := fmt.Sprintf("queue_depth_%d", m)
			ls := append(common(tgt, n), prompb.Label{Name: "__name__", Value: name}, prompb.Label{Name: "queue", Value: fmt.Sprint("q", m)})
			sortLabels(ls)
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: float64(n), Timestamp: ts}}})
			n++
		}
		for _, suf := range append(append([]string{}, bounds...), "sum", "count") {
			if n >= series {
				break
			}
			ls := common(tgt, 0)
			name := "request_duration_seconds_bucket"
			switch suf {
			case "sum":
				name = "request_duration_seconds_sum"
			case "count":
				name = "request_duration_seconds_count"
			default:
				ls = append(ls, prompb.Label{Name: "le", Value: suf})
			}
			ls = append(ls, prompb.Label{Name: "__name__", Value: name}, prompb.Label{Name: "code", Value: "200"})
			sortLabels(ls)
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: float64(n), Timestamp: ts}}})
			n++
		}
	}
	for m := range 10 {
		meta = append(meta, prompb.MetricMetadata{MetricFamilyName: fmt.Sprintf("http_requests_%d_total", m), Type: prompb.MetricMetadata_COUNTER, Help: "Requests."})
	}
	for m := range 5 {
		meta = append(meta, prompb.MetricMetadata{MetricFamilyName: fmt.Sprintf("queue_depth_%d", m), Type: prompb.MetricMetadata_GAUGE, Help: "Depth."})
	}
	meta = append(meta, prompb.MetricMetadata{MetricFamilyName: "request_duration_seconds", Type: prompb.MetricMetadata_HISTOGRAM, Help: "Latency.", Unit: "seconds"})
	return req, meta
}

func toV2(req *prompb.WriteRequest, meta []prompb.MetricMetadata) *writev2.Request {
	st := newSymtab()
	types := map[string]writev2.Metadata{}
	for _, m := range meta {
		types[m.MetricFamilyName] = writev2.Metadata{Type: writev2.Metadata_MetricType(m.Type), HelpRef: st.ref(m.Help), UnitRef: st.ref(m.Unit)}
	}
	out := &writev2.Request{}
	for _, ts := range req.Timeseries {
		name := ""
		for _, l := range ts.Labels {
			if l.Name == labelName {
				name = l.Value
			}
		}
		md, ok := types[name]
		if !ok {
			for _, suf := range familySuffixes {
				if base := name[:max(0, len(name)-len(suf))]; len(name) > len(suf) && name[len(base):] == suf {
					if md, ok = types[base]; ok {
						break
					}
				}
			}
		}
		out.Timeseries = append(out.Timeseries, writev2.TimeSeries{
			LabelsRefs: st.refs(ts.Labels),
			Samples:    []writev2.Sample{{Value: ts.Samples[0].Value, Timestamp: ts.Samples[0].Timestamp}},
			Metadata:   md,
		})
	}
	out.Symbols = st.syms
	return out
}

// BenchmarkDecodeTranslate measures the receiver's hot path for one request:
// snappy decode, protobuf decode, translation to pdata. Bytes are the
// compressed body; samples/s is reported too.
func BenchmarkDecodeTranslate(b *testing.B) {
	req, meta := benchRequest()
	raw1, err := req.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	raw2, err := toV2(req, meta).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	metaRaw, err := (&prompb.WriteRequest{Metadata: meta}).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		v    Version
		raw  []byte
	}{{"v1", V1, raw1}, {"v2", V2, raw2}} {
		body := snappy.Encode(nil, c.raw)
		tr := NewTranslator(Options{})
		warm := GetRequest()
		if err := warm.Decode(V1, metaRaw); err != nil {
			b.Fatal(err)
		}
		tr.Translate(warm) // the metadata request Prometheus sends first
		PutRequest(warm)

		b.Run(c.name+"/all", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			var buf []byte
			for b.Loop() {
				payload, err := Decompress(buf, body, 32<<20)
				if err != nil {
					b.Fatal(err)
				}
				buf = payload[:0]
				r := GetRequest()
				if err := r.Decode(c.v, payload); err != nil {
					b.Fatal(err)
				}
				md, st := tr.Translate(r)
				PutRequest(r)
				if st.InvalidSeries != 0 || md.DataPointCount() == 0 {
					b.Fatalf("bad translation: %+v", st)
				}
			}
			b.ReportMetric(float64(len(req.Timeseries))*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
		})
		b.Run(c.name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			var buf []byte
			for b.Loop() {
				payload, _ := Decompress(buf, body, 32<<20)
				buf = payload[:0]
				r := GetRequest()
				if err := r.Decode(c.v, payload); err != nil {
					b.Fatal(err)
				}
				PutRequest(r)
			}
		})
		b.Run(c.name+"/translate", func(b *testing.B) {
			b.ReportAllocs()
			r := GetRequest()
			if err := r.Decode(c.v, c.raw); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				tr.Translate(r)
			}
		})
	}
}
