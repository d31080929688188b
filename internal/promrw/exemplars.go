package promrw

import (
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// exemplar is an exemplar of either version; labels live in the batch arena.
type exemplar struct {
	labels []prompb.Label
	v      float64
	t      int64
}

func (b *batch) addExemplars(dst pmetric.ExemplarSlice, exs []exemplar) {
	for _, e := range exs {
		ex := dst.AppendEmpty()
		ex.SetDoubleValue(e.v)
		if validTs(e.t) {
			ex.SetTimestamp(msToTs(e.t))
		}
		for _, l := range e.labels {
			switch l.Name {
			case "trace_id":
				var id pcommon.TraceID
				if decodeHexID(id[:], l.Value) {
					ex.SetTraceID(id)
					continue
				}
			case "span_id":
				var id pcommon.SpanID
				if decodeHexID(id[:], l.Value) {
					ex.SetSpanID(id)
					continue
				}
			}
			ex.FilteredAttributes().PutStr(l.Name, l.Value)
		}
		b.stats.WrittenExemplars++
	}
}

func decodeHexID(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
