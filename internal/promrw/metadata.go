package promrw

import (
	"strings"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// mtype is a Prometheus metric type as carried in metadata.
type mtype uint8

const (
	typeNone mtype = iota // no metadata, or UNKNOWN: infer from suffixes
	typeCounter
	typeGauge
	typeHistogram
	typeGaugeHistogram
	typeSummary
	typeInfo
	typeStateset
)

var typeNames = [...]string{"unknown", "counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset"}

type familyMeta struct {
	typ        mtype
	help, unit string
}

func typeFromV1(t prompb.MetricMetadata_MetricType) mtype {
	switch t {
	case prompb.MetricMetadata_COUNTER:
		return typeCounter
	case prompb.MetricMetadata_GAUGE:
		return typeGauge
	case prompb.MetricMetadata_HISTOGRAM:
		return typeHistogram
	case prompb.MetricMetadata_GAUGEHISTOGRAM:
		return typeGaugeHistogram
	case prompb.MetricMetadata_SUMMARY:
		return typeSummary
	case prompb.MetricMetadata_INFO:
		return typeInfo
	case prompb.MetricMetadata_STATESET:
		return typeStateset
	}
	return typeNone
}

func typeFromV2(t writev2.Metadata_MetricType) mtype {
	switch t {
	case writev2.Metadata_METRIC_TYPE_COUNTER:
		return typeCounter
	case writev2.Metadata_METRIC_TYPE_GAUGE:
		return typeGauge
	case writev2.Metadata_METRIC_TYPE_HISTOGRAM:
		return typeHistogram
	case writev2.Metadata_METRIC_TYPE_GAUGEHISTOGRAM:
		return typeGaugeHistogram
	case writev2.Metadata_METRIC_TYPE_SUMMARY:
		return typeSummary
	case writev2.Metadata_METRIC_TYPE_INFO:
		return typeInfo
	case writev2.Metadata_METRIC_TYPE_STATESET:
		return typeStateset
	}
	return typeNone
}

var familySuffixes = [...]string{"_bucket", "_sum", "_count", "_created", "_total", "_info", "_gsum", "_gcount"}

// lookupV1 finds 1.0 metadata for a series name: the family of that exact
// name, else the family the name is a suffixed sample of. Results, misses
// included, are memoised per request so the shared cache is locked once per
// name, not once per series.
func (b *batch) lookupV1(name string) familyMeta {
	if md, ok := b.metaMemo[name]; ok {
		return md
	}
	md, ok := b.t.meta.get(name)
	if !ok {
		for _, suf := range familySuffixes {
			if base, cut := strings.CutSuffix(name, suf); cut && base != "" {
				if md, ok = b.t.meta.get(base); ok {
					break
				}
			}
		}
	}
	b.metaMemo[name] = md
	return md
}
