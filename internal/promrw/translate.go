package promrw

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Options configure a Translator. Zero values take the defaults below.
type Options struct {
	// MetadataCacheSize bounds the remote write 1.0 metric metadata (type,
	// help, unit) remembered across requests, in metric families. Prometheus
	// sends 1.0 metadata in requests of its own, so without this cache types
	// would only be guessed from suffixes.
	MetadataCacheSize int
	// TargetInfoCacheSize bounds the target_info label sets remembered across
	// requests, in targets (job, instance).
	TargetInfoCacheSize int
	// ScopeName and ScopeVersion name the instrumentation scope of series
	// that carry no otel_scope_name label.
	ScopeName, ScopeVersion string
	// MaxNativeBuckets bounds the dense buckets one side of one native
	// histogram may expand to (spans can encode huge gaps in a few bytes).
	MaxNativeBuckets int
}

// Defaults for Options.
const (
	DefaultMetadataCacheSize   = 20000
	DefaultTargetInfoCacheSize = 10000
	DefaultMaxNativeBuckets    = 4096
)

// Translator turns decoded remote-write requests into OTLP metrics. It holds
// the bounded cross-request caches (1.0 metadata, target_info) and is safe
// for concurrent use; each Translate call works on its own pooled scratch.
type Translator struct {
	opts    Options
	meta    *genCache[string, familyMeta]
	targets *genCache[resKey, []prompb.Label]
	pool    sync.Pool
}

// NewTranslator returns a Translator with opts, defaults filled in.
func NewTranslator(opts Options) *Translator {
	if opts.MetadataCacheSize <= 0 {
		opts.MetadataCacheSize = DefaultMetadataCacheSize
	}
	if opts.TargetInfoCacheSize <= 0 {
		opts.TargetInfoCacheSize = DefaultTargetInfoCacheSize
	}
	if opts.MaxNativeBuckets <= 0 {
		opts.MaxNativeBuckets = DefaultMaxNativeBuckets
	}
	t := &Translator{
		opts:    opts,
		meta:    newGenCache[string, familyMeta](opts.MetadataCacheSize),
		targets: newGenCache[resKey, []prompb.Label](opts.TargetInfoCacheSize),
	}
	t.pool.New = func() any { return newBatch() }
	return t
}

// CacheEntries returns the entries held in the metadata and target_info caches.
func (t *Translator) CacheEntries() (metadata, targetInfo int) {
	return t.meta.len(), t.targets.len()
}

// Stats describe one translated request.
type Stats struct {
	// Series, Samples, Histograms and Exemplars count what the request carried.
	Series, Samples, Histograms, Exemplars int
	// Written* count what went into the OTLP output; they are the values of
	// the remote write 2.0 X-Prometheus-Remote-Write-*-Written headers.
	WrittenSamples, WrittenHistograms, WrittenExemplars int
	// DataPoints is the number of OTLP data points produced.
	DataPoints int
	// Metadata counts the 1.0 metadata entries the request carried.
	Metadata int
	// InvalidSeries counts series refused as malformed; FirstInvalid says
	// why the first one was.
	InvalidSeries int
	FirstInvalid  error
	// Dropped counts well-formed points the compatibility spec says to drop:
	// gauge histograms, and exemplars with invalid labels.
	Dropped int
	// Split counts classic histogram and summary points that arrived
	// incomplete in this request (no _count, or a summary without _sum) and
	// were forwarded as their component gauges instead. Prometheus shards a
	// family's series over requests, so this happens; see splitClassic.
	Split int
}

// ErrInvalidSeries wraps the reason a series was refused.
var ErrInvalidSeries = errors.New("invalid series")

// Translate converts r into OTLP metrics. Series that are malformed are left
// out and counted in Stats.InvalidSeries (the caller answers 400 after
// forwarding the rest, as Prometheus' own receiver does); the output never
// references r's slices, only its immutable strings.
func (t *Translator) Translate(r *Request) (pmetric.Metrics, Stats) {
	b := t.pool.Get().(*batch)
	b.t = t
	b.out = pmetric.NewMetrics()
	b.lastIdx = -1
	switch r.Version {
	case V1:
		b.fromV1(&r.V1)
	case V2:
		b.fromV2(&r.V2)
	}
	out, st := b.out, b.stats
	b.reset()
	t.pool.Put(b)
	return out, st
}

func (b *batch) invalid(s *series, format string, args ...any) {
	s.invalid = true
	b.stats.InvalidSeries++
	if b.stats.FirstInvalid == nil {
		b.stats.FirstInvalid = fmt.Errorf("%w %s: %s", ErrInvalidSeries, describe(s.labels), fmt.Sprintf(format, args...))
	}
}

// describe renders labels as name{k="v",...}, clipped, for error messages.
func describe(ls []prompb.Label) string {
	var sb strings.Builder
	name := ""
	for _, l := range ls {
		if l.Name == labelName {
			name = l.Value
		}
	}
	sb.WriteString(strconv.Quote(name))
	sb.WriteByte('{')
	first := true
	for _, l := range ls {
		if l.Name == labelName {
			continue
		}
		if !first {
			sb.WriteByte(',')
		}
		first = false
		sb.WriteString(l.Name)
		sb.WriteByte('=')
		sb.WriteString(strconv.Quote(l.Value))
		if sb.Len() > 200 {
			sb.WriteString(",...")
			break
		}
	}
	sb.WriteByte('}')
	return sb.String()
}

// maxTimestampMs keeps ms * 1e6 within int64 nanoseconds.
const maxTimestampMs = math.MaxInt64 / int64(1e6)

func validTs(t int64) bool { return t >= 0 && t <= maxTimestampMs }

func msToTs(ms int64) pcommon.Timestamp { return pcommon.Timestamp(ms * 1e6) }
