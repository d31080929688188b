package promrw

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
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

// okind is the kind of OTLP metric a series lands in.
type okind uint8

const (
	kGauge okind = iota
	kCounter
	kUpDown // non-monotonic sum: info, stateset
	kHistogram
	kSummary
	kExpHistogram
)

// role is what a series contributes to its metric.
type role uint8

const (
	roleValue role = iota
	roleBucket
	roleQuantile
	roleSum
	roleCount
	roleCreated
	roleNative
	roleTargetInfo
	roleScopeInfo
	roleDrop
)

const (
	labelName       = "__name__"
	labelJob        = "job"
	labelInstance   = "instance"
	labelLe         = "le"
	labelQuantile   = "quantile"
	labelScopeName  = "otel_scope_name"
	labelScopeVer   = "otel_scope_version"
	metricTarget    = "target_info"
	metricScopeInfo = "otel_scope_info"
)

type resKey struct{ job, instance string }

type scopeKey struct {
	res           int32
	name, version string
}

type scopeInfoKey struct {
	res           resKey
	name, version string
}

type metricKey struct {
	scope int32
	kind  okind
	name  string
}

type resState struct {
	key      resKey
	rm       pmetric.ResourceMetrics
	defScope int32
}

type metricState struct {
	m     pmetric.Metric
	kind  okind
	scope int32
}

// series is what pass one learns about one time series; pass two emits it.
type series struct {
	labels        []prompb.Label
	name          string
	job, instance string
	le, quantile  string
	scope, scopeV string
	hasLe, hasQ   bool
	md            familyMeta
	fam           string
	role          role
	kind          okind
	invalid       bool
	idx           int // index in the request
}

// sample is a float sample of either version.
type sample struct {
	v     float64
	t     int64
	start int64 // ms; 0 when unknown
}

// exemplar is an exemplar of either version; labels live in the batch arena.
type exemplar struct {
	labels []prompb.Label
	v      float64
	t      int64
}

type pendKey struct {
	metric int32
	t      int64
	h      uint64
}

// pendPoint gathers a classic histogram or summary point from its series.
type pendPoint struct {
	metric        int32
	t, start      int64
	labels        []prompb.Label
	next          int32 // collision chain within pendIdx
	sum, count    float64
	hasSum, hasCt bool
	stale         bool
	vals          int32 // head of the bucket/quantile list in batch.vals
	exs           int32 // head of the exemplar list in batch.exs
}

type pendVal struct {
	bound, v float64
	label    string // the le or quantile value as sent
	next     int32
}

type pendEx struct {
	ex   exemplar
	next int32
}

type createdKey struct {
	fam string
	h   uint64
}

// batch is the per-request scratch of a Translate call, pooled: its maps and
// slices keep their capacity between requests, so a steady stream of
// similar requests allocates little beyond the pdata it produces.
type batch struct {
	t       *Translator
	out     pmetric.Metrics
	stats   Stats
	series  []series
	arena   []prompb.Label // 2.0 labels resolved from symbols
	samples []sample
	exs     []exemplar

	resIdx    map[resKey]int32
	res       []resState
	scopeIdx  map[scopeKey]int32
	scopes    []pmetric.ScopeMetrics
	metricIdx map[metricKey]int32
	metrics   []metricState
	lastKey   metricKey
	lastIdx   int32

	metaMemo map[string]familyMeta
	famKind  map[string]okind
	created  map[createdKey]int64
	targets  map[resKey][]prompb.Label
	scopeAt  map[scopeInfoKey][]prompb.Label

	pendIdx map[pendKey]int32
	pend    []pendPoint
	vals    []pendVal
	pexs    []pendEx
	sortBuf []pendVal
	natives []nativeHist
	spans   []span
	pos     []uint64
	neg     []uint64

	nativeBudget int
	pruneEmpty   bool
	dig          *xxhash.Digest
}

func newBatch() *batch {
	return &batch{
		resIdx:    make(map[resKey]int32),
		scopeIdx:  make(map[scopeKey]int32),
		metricIdx: make(map[metricKey]int32),
		metaMemo:  make(map[string]familyMeta),
		famKind:   make(map[string]okind),
		created:   make(map[createdKey]int64),
		targets:   make(map[resKey][]prompb.Label),
		scopeAt:   make(map[scopeInfoKey][]prompb.Label),
		pendIdx:   make(map[pendKey]int32),
		dig:       xxhash.New(),
	}
}

// maxPooledLen keeps one huge request from pinning its scratch in the pool.
const maxPooledLen = 1 << 18

func (b *batch) reset() {
	b.out = pmetric.Metrics{}
	b.stats = Stats{}
	clear(b.series)
	b.series = b.series[:0]
	clear(b.arena)
	b.arena = b.arena[:0]
	b.samples = b.samples[:0]
	clear(b.exs)
	b.exs = b.exs[:0]
	clear(b.resIdx)
	clear(b.res)
	b.res = b.res[:0]
	clear(b.scopeIdx)
	clear(b.scopes)
	b.scopes = b.scopes[:0]
	clear(b.metricIdx)
	clear(b.metrics)
	b.metrics = b.metrics[:0]
	b.lastKey, b.lastIdx = metricKey{}, -1
	b.pruneEmpty = false
	clear(b.metaMemo)
	clear(b.famKind)
	clear(b.created)
	clear(b.targets)
	clear(b.scopeAt)
	clear(b.pendIdx)
	clear(b.pend)
	b.pend = b.pend[:0]
	b.vals = b.vals[:0]
	clear(b.natives)
	b.natives = b.natives[:0]
	b.spans = b.spans[:0]
	clear(b.pexs)
	b.pexs = b.pexs[:0]
	if cap(b.series) > maxPooledLen || cap(b.arena) > 16*maxPooledLen || cap(b.pend) > maxPooledLen {
		*b = *newBatch()
	}
}

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

// scanLabels fills the identity fields of s from its labels and validates them.
func (b *batch) scanLabels(s *series) bool {
	prev, sorted := "", true
	for i, l := range s.labels {
		if l.Name == "" {
			b.invalid(s, "empty label name")
			return false
		}
		if i > 0 && l.Name == prev {
			b.invalid(s, "duplicate label %q", l.Name)
			return false
		}
		sorted = sorted && l.Name > prev
		prev = l.Name
		if !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value) {
			b.invalid(s, "label %q is not valid UTF-8", l.Name)
			return false
		}
		switch l.Name {
		case labelName:
			s.name = l.Value
		case labelJob:
			s.job = l.Value
		case labelInstance:
			s.instance = l.Value
		case labelLe:
			s.le, s.hasLe = l.Value, true
		case labelQuantile:
			s.quantile, s.hasQ = l.Value, true
		case labelScopeName:
			s.scope = l.Value
		case labelScopeVer:
			s.scopeV = l.Value
		}
	}
	if !sorted {
		// Senders should sort labels by name, but not all do; a duplicate
		// is then not next to its twin.
		if d, ok := duplicateName(s.labels); ok {
			b.invalid(s, "duplicate label %q", d)
			return false
		}
	}
	if s.name == "" {
		b.invalid(s, "no metric name (__name__ label)")
		return false
	}
	return true
}

// duplicateName returns a label name that occurs twice in ls.
func duplicateName(ls []prompb.Label) (string, bool) {
	names := make([]string, len(ls))
	for i := range ls {
		names[i] = ls[i].Name
	}
	slices.Sort(names)
	for i := 1; i < len(names); i++ {
		if names[i] == names[i-1] {
			return names[i], true
		}
	}
	return "", false
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

// classify decides the family, metric kind and role of a series from its
// metadata, its labels and (without metadata) its suffix and the families
// seen elsewhere in the request.
func (b *batch) classify(s *series, native bool) {
	s.fam, s.kind, s.role = s.name, kGauge, roleValue
	switch s.name {
	case metricTarget:
		s.role = roleTargetInfo
		return
	case metricScopeInfo:
		s.role = roleScopeInfo
		return
	}
	if native {
		if s.md.typ == typeGaugeHistogram {
			s.role = roleDrop
			return
		}
		s.kind, s.role = kExpHistogram, roleNative
		return
	}
	name := s.name
	switch s.md.typ {
	case typeCounter:
		if base, ok := strings.CutSuffix(name, "_created"); ok && base != "" {
			s.fam, s.role = base, roleCreated
			return
		}
		s.kind = kCounter
	case typeGauge:
	case typeInfo, typeStateset:
		s.kind = kUpDown
	case typeGaugeHistogram:
		s.role = roleDrop
	case typeHistogram:
		b.classicRole(s, kHistogram)
	case typeSummary:
		b.classicRole(s, kSummary)
	case typeNone:
		switch {
		case s.hasLe && strings.HasSuffix(name, "_bucket"):
			b.classicRole(s, kHistogram)
		case s.hasQ:
			b.classicRole(s, kSummary)
		case hasAnySuffix(name, "_sum", "_count", "_created"):
			base := name[:strings.LastIndexByte(name, '_')]
			if k, ok := b.famKind[base]; ok {
				if k == kCounter {
					if strings.HasSuffix(name, "_created") {
						s.fam, s.role = base, roleCreated
					}
					return
				}
				b.classicRole(s, k)
			}
		case strings.HasSuffix(name, "_total"):
			s.kind = kCounter
		}
	}
}

func hasAnySuffix(s string, sufs ...string) bool {
	for _, x := range sufs {
		if strings.HasSuffix(s, x) && len(s) > len(x) {
			return true
		}
	}
	return false
}

// classicRole places a series of a classic histogram or summary family.
func (b *batch) classicRole(s *series, k okind) {
	name := s.name
	s.kind = k
	switch {
	case k == kHistogram && s.hasLe && strings.HasSuffix(name, "_bucket"):
		s.fam, s.role = name[:len(name)-len("_bucket")], roleBucket
	case k == kSummary && s.hasQ && !hasAnySuffix(name, "_sum", "_count", "_created"):
		s.role = roleQuantile
	case strings.HasSuffix(name, "_sum") && len(name) > 4:
		s.fam, s.role = name[:len(name)-4], roleSum
	case strings.HasSuffix(name, "_count") && len(name) > 6:
		s.fam, s.role = name[:len(name)-6], roleCount
	case strings.HasSuffix(name, "_created") && len(name) > 8:
		s.fam, s.role = name[:len(name)-8], roleCreated
	default:
		// Typed as a histogram or summary but not shaped like one: keep
		// the samples as a gauge rather than lose them.
		s.kind, s.role = kGauge, roleValue
	}
}

// noteFamily records, in pass one, families whose shape shows in the
// request, for series that come without metadata.
func (b *batch) noteFamily(s *series) {
	switch {
	case s.hasLe && strings.HasSuffix(s.name, "_bucket"):
		b.famKind[s.name[:len(s.name)-len("_bucket")]] = kHistogram
	case s.hasQ:
		b.famKind[s.name] = kSummary
	case s.md.typ == typeCounter || (s.md.typ == typeNone && strings.HasSuffix(s.name, "_total")):
		b.famKind[strings.TrimSuffix(s.name, "_total")] = kCounter
	}
	if s.md.typ == typeHistogram || s.md.typ == typeSummary {
		for _, suf := range [...]string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(s.name, suf); ok && base != "" {
				if s.md.typ == typeHistogram {
					b.famKind[base] = kHistogram
				} else {
					b.famKind[base] = kSummary
				}
			}
		}
	}
}

// hashLabels hashes the labels that identify a point within its family:
// all but __name__, le and quantile.
func (b *batch) hashLabels(fam string, ls []prompb.Label) uint64 {
	d := b.dig
	d.Reset()
	_, _ = d.WriteString(fam)
	for _, l := range ls {
		switch l.Name {
		case labelName, labelLe, labelQuantile:
			continue
		}
		_, _ = d.WriteString("\xff")
		_, _ = d.WriteString(l.Name)
		_, _ = d.WriteString("\xfe")
		_, _ = d.WriteString(l.Value)
	}
	return d.Sum64()
}

func sameIdentity(a, b []prompb.Label) bool {
	i, j := 0, 0
	for {
		for i < len(a) && (a[i].Name == labelName || a[i].Name == labelLe || a[i].Name == labelQuantile) {
			i++
		}
		for j < len(b) && (b[j].Name == labelName || b[j].Name == labelLe || b[j].Name == labelQuantile) {
			j++
		}
		if i == len(a) || j == len(b) {
			return i == len(a) && j == len(b)
		}
		if a[i].Name != b[j].Name || a[i].Value != b[j].Value {
			return false
		}
		i++
		j++
	}
}

// noteCreated records a _created sample (seconds since the epoch, as a float)
// as the start time of the points of its family with the same labels.
func (b *batch) noteCreated(s *series, base string, samples []sample) {
	for _, sm := range samples {
		if math.IsNaN(sm.v) || sm.v <= 0 || sm.v > float64(maxTimestampMs)/1e3 {
			continue
		}
		b.created[createdKey{base, b.hashLabels(base, s.labels)}] = int64(sm.v * 1e3)
	}
}

func (b *batch) startFor(fam string, ls []prompb.Label) int64 {
	if len(b.created) == 0 {
		return 0
	}
	return b.created[createdKey{fam, b.hashLabels(fam, ls)}]
}

// resource returns the index of the resource for (job, instance).
func (b *batch) resource(job, instance string) int32 {
	k := resKey{job, instance}
	if i, ok := b.resIdx[k]; ok {
		return i
	}
	rm := b.out.ResourceMetrics().AppendEmpty()
	attrs := rm.Resource().Attributes()
	if job != "" {
		if ns, name, ok := strings.Cut(job, "/"); ok {
			attrs.PutStr("service.namespace", ns)
			attrs.PutStr("service.name", name)
		} else {
			attrs.PutStr("service.name", job)
		}
	}
	if instance != "" {
		attrs.PutStr("service.instance.id", instance)
	}
	i := int32(len(b.res))
	b.res = append(b.res, resState{key: k, rm: rm, defScope: -1})
	b.resIdx[k] = i
	return i
}

func (b *batch) scope(res int32, name, version string) int32 {
	r := &b.res[res]
	if name == "" && version == "" {
		if r.defScope < 0 {
			r.defScope = b.newScope(r, b.t.opts.ScopeName, b.t.opts.ScopeVersion)
		}
		return r.defScope
	}
	k := scopeKey{res, name, version}
	if i, ok := b.scopeIdx[k]; ok {
		return i
	}
	i := b.newScope(r, name, version)
	b.scopeIdx[k] = i
	return i
}

func (b *batch) newScope(r *resState, name, version string) int32 {
	sm := r.rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(name)
	sm.Scope().SetVersion(version)
	b.scopes = append(b.scopes, sm)
	return int32(len(b.scopes) - 1)
}

// metric returns the index of the metric (scope, kind, name), creating it
// with the family's metadata.
func (b *batch) metric(scope int32, k okind, name string, md familyMeta) int32 {
	key := metricKey{scope, k, name}
	if b.lastIdx >= 0 && b.lastKey == key {
		return b.lastIdx
	}
	i, ok := b.metricIdx[key]
	if !ok {
		m := b.scopes[scope].Metrics().AppendEmpty()
		m.SetName(name)
		m.SetDescription(md.help)
		m.SetUnit(otelUnit(md.unit))
		m.Metadata().PutStr("prometheus.type", typeNames[md.typ])
		switch k {
		case kGauge:
			m.SetEmptyGauge()
		case kCounter:
			s := m.SetEmptySum()
			s.SetIsMonotonic(true)
			s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		case kUpDown:
			s := m.SetEmptySum()
			s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		case kHistogram:
			m.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		case kSummary:
			m.SetEmptySummary()
		case kExpHistogram:
			m.SetEmptyExponentialHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		}
		i = int32(len(b.metrics))
		b.metrics = append(b.metrics, metricState{m: m, kind: k, scope: scope})
		b.metricIdx[key] = i
	}
	b.lastKey, b.lastIdx = key, i
	return i
}

// putAttrs copies the labels that are point attributes: all but the metric
// name, the resource (job, instance), the scope labels, and the label a
// histogram or summary family consumes (le, quantile).
func putAttrs(dst pcommon.Map, ls []prompb.Label, k okind) {
	dst.EnsureCapacity(len(ls))
	for _, l := range ls {
		switch l.Name {
		case labelName, labelJob, labelInstance, labelScopeName, labelScopeVer:
			continue
		case labelLe:
			if k == kHistogram {
				continue
			}
		case labelQuantile:
			if k == kSummary {
				continue
			}
		}
		dst.PutStr(l.Name, l.Value)
	}
}

// emit places the samples of one classified series into the output.
func (b *batch) emit(s *series, samples []sample, exs []exemplar) {
	switch s.role {
	case roleTargetInfo:
		b.targets[resKey{s.job, s.instance}] = s.labels
		b.stats.WrittenSamples += len(samples)
		return
	case roleScopeInfo:
		b.scopeAt[scopeInfoKey{resKey{s.job, s.instance}, s.scope, s.scopeV}] = s.labels
		b.stats.WrittenSamples += len(samples)
		return
	case roleDrop:
		b.stats.Dropped += len(samples)
		return
	case roleCreated:
		// Consumed in pass one as the start time of its family's points.
		b.stats.WrittenSamples += len(samples)
		return
	}
	var bound float64
	switch s.role {
	case roleBucket:
		v, err := strconv.ParseFloat(s.le, 64)
		if err != nil || math.IsNaN(v) {
			b.invalid(s, "le=%q is not a number", s.le)
			return
		}
		bound = v
	case roleQuantile:
		v, err := strconv.ParseFloat(s.quantile, 64)
		if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
			b.invalid(s, "quantile=%q is not a number in [0, 1]", s.quantile)
			return
		}
		bound = v
	}
	mi := b.metric(b.seriesScope(s), s.kind, s.fam, s.md)
	b.stats.WrittenSamples += len(samples)
	if s.role == roleValue {
		b.emitNumbers(s, mi, samples, exs)
	} else {
		b.emitClassic(s, mi, bound, samples, exs)
	}
}

// seriesScope returns the scope of a series' resource, creating both.
func (b *batch) seriesScope(s *series) int32 {
	return b.scope(b.resource(s.job, s.instance), s.scope, s.scopeV)
}

func (b *batch) emitNumbers(s *series, mi int32, samples []sample, exs []exemplar) {
	ms := b.metrics[mi]
	var dps pmetric.NumberDataPointSlice
	if ms.kind == kGauge {
		dps = ms.m.Gauge().DataPoints()
	} else {
		dps = ms.m.Sum().DataPoints()
	}
	var start int64
	if ms.kind == kCounter {
		start = b.startFor(strings.TrimSuffix(s.name, "_total"), s.labels)
	}
	var dp pmetric.NumberDataPoint
	for i, sm := range samples {
		dp = dps.AppendEmpty()
		if i == 0 {
			putAttrs(dp.Attributes(), s.labels, ms.kind)
		} else {
			dps.At(dps.Len() - 2).Attributes().CopyTo(dp.Attributes())
		}
		dp.SetTimestamp(msToTs(sm.t))
		if st := max(sm.start, start); st > 0 {
			dp.SetStartTimestamp(msToTs(st))
		}
		if value.IsStaleNaN(sm.v) {
			dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		} else {
			dp.SetDoubleValue(sm.v)
		}
	}
	b.stats.DataPoints += len(samples)
	if len(samples) > 0 {
		b.addExemplars(dp.Exemplars(), exs)
	}
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

// emitClassic adds the samples of one histogram or summary component series
// to the pending points they belong to.
func (b *batch) emitClassic(s *series, mi int32, bound float64, samples []sample, exs []exemplar) {
	label := s.le
	if s.role == roleQuantile {
		label = s.quantile
	}
	h := b.hashLabels(s.fam, s.labels)
	for _, sm := range samples {
		p := b.pendFor(mi, sm.t, h, s.labels)
		if value.IsStaleNaN(sm.v) {
			p.stale = true
		}
		if sm.start > 0 {
			p.start = sm.start
		}
		switch s.role {
		case roleBucket, roleQuantile:
			b.vals = append(b.vals, pendVal{bound: bound, v: sm.v, label: label, next: p.vals})
			p.vals = int32(len(b.vals) - 1)
		case roleSum:
			p.sum, p.hasSum = sm.v, true
		case roleCount:
			p.count, p.hasCt = sm.v, true
		}
	}
	if len(samples) > 0 && len(exs) > 0 {
		p := b.pendFor(mi, samples[len(samples)-1].t, h, s.labels)
		for _, e := range exs {
			b.pexs = append(b.pexs, pendEx{ex: e, next: p.exs})
			p.exs = int32(len(b.pexs) - 1)
		}
	}
}

func (b *batch) pendFor(mi int32, t int64, h uint64, ls []prompb.Label) *pendPoint {
	k := pendKey{mi, t, h}
	head, ok := b.pendIdx[k]
	if ok {
		for i := head; i >= 0; i = b.pend[i].next {
			if sameIdentity(b.pend[i].labels, ls) {
				return &b.pend[i]
			}
		}
	} else {
		head = -1
	}
	b.pend = append(b.pend, pendPoint{metric: mi, t: t, labels: ls, next: head, vals: -1, exs: -1})
	i := int32(len(b.pend) - 1)
	b.pendIdx[k] = i
	return &b.pend[i]
}

// finishClassic turns the pending points into histogram and summary points.
func (b *batch) finishClassic() {
	for i := range b.pend {
		p := &b.pend[i]
		ms := b.metrics[p.metric]
		vals := b.sortBuf[:0]
		for j := p.vals; j >= 0; j = b.vals[j].next {
			vals = append(vals, b.vals[j])
		}
		sortVals(vals)
		b.sortBuf = vals
		if !p.hasCt || (ms.kind == kSummary && !p.hasSum) {
			b.splitClassic(p, ms, vals)
			continue
		}
		start := p.start
		if start == 0 {
			start = b.startFor(ms.m.Name(), p.labels)
		}
		var exs pmetric.ExemplarSlice
		if ms.kind == kHistogram {
			dp := ms.m.Histogram().DataPoints().AppendEmpty()
			putAttrs(dp.Attributes(), p.labels, kHistogram)
			dp.SetTimestamp(msToTs(p.t))
			if start > 0 {
				dp.SetStartTimestamp(msToTs(start))
			}
			if p.stale {
				dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
			} else {
				b.fillHistogram(dp, p, vals)
			}
			exs = dp.Exemplars()
		} else {
			dp := ms.m.Summary().DataPoints().AppendEmpty()
			putAttrs(dp.Attributes(), p.labels, kSummary)
			dp.SetTimestamp(msToTs(p.t))
			if start > 0 {
				dp.SetStartTimestamp(msToTs(start))
			}
			if p.stale {
				dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
			} else {
				dp.SetCount(toCount(p.count))
				dp.SetSum(p.sum)
				qs := dp.QuantileValues()
				qs.EnsureCapacity(len(vals))
				for k, v := range vals {
					if k > 0 && v.bound == vals[k-1].bound {
						continue
					}
					q := qs.AppendEmpty()
					q.SetQuantile(v.bound)
					q.SetValue(v.v)
				}
			}
		}
		for j := p.exs; j >= 0; j = b.pexs[j].next {
			b.addExemplars(exs, []exemplar{b.pexs[j].ex})
		}
		b.stats.DataPoints++
	}
}

func (b *batch) fillHistogram(dp pmetric.HistogramDataPoint, p *pendPoint, vals []pendVal) {
	dp.SetCount(toCount(p.count))
	if p.hasSum {
		dp.SetSum(p.sum)
	}
	bounds := dp.ExplicitBounds()
	counts := dp.BucketCounts()
	bounds.EnsureCapacity(len(vals))
	counts.EnsureCapacity(len(vals) + 1)
	prev := 0.0
	for k, v := range vals {
		if k > 0 && v.bound == vals[k-1].bound {
			continue // a duplicate le: keep the first
		}
		if math.IsInf(v.bound, +1) {
			break
		}
		bounds.Append(v.bound)
		counts.Append(toCount(v.v - prev))
		prev = max(prev, v.v)
	}
	// The overflow bucket: what _count has beyond the last finite bound.
	counts.Append(toCount(p.count - prev))
}

// toCount converts a Prometheus float count to OTLP's unsigned count,
// clamping the negatives that inconsistent bucket series can produce.
func toCount(v float64) uint64 {
	if !(v > 0) || math.IsInf(v, 0) {
		return 0
	}
	if v >= math.MaxUint64 {
		return math.MaxUint64
	}
	return uint64(math.Round(v))
}

func sortVals(v []pendVal) {
	// Insertion sort: a family has a handful of buckets, usually already in
	// order, and this avoids the closure sort.Slice would allocate.
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j].bound < v[j-1].bound; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

// splitClassic forwards an incomplete classic histogram or summary point
// as the gauges it arrived as (name_bucket{le}, name{quantile}, name_sum,
// name_count), with the values and label values as sent.
//
// The compatibility spec drops a point without _count, but over remote write
// a missing series usually means Prometheus put it in another request (its
// shards split a family's series at random), not that it does not exist.
// Dropping would lose data, and synthesising the missing parts (a zero sum)
// would write values the source never had. As gauges, the parts land in a
// Prometheus-compatible backend under their original names and values, next
// to the parts that did form a point in the other request; an OTLP consumer
// sees a histogram with coarser buckets or a summary with fewer quantiles,
// plus these gauges. Counted in Stats.Split.
func (b *batch) splitClassic(p *pendPoint, ms metricState, vals []pendVal) {
	b.stats.Split++
	fam := ms.m.Name()
	md := familyMeta{typ: typeNone, help: ms.m.Description()}
	add := func(name, extraKey, extraVal string, v float64) {
		mi := b.metric(ms.scope, kGauge, name, md)
		dp := b.metrics[mi].m.Gauge().DataPoints().AppendEmpty()
		attrs := dp.Attributes()
		putAttrs(attrs, p.labels, ms.kind)
		if extraKey != "" {
			attrs.PutStr(extraKey, extraVal)
		}
		dp.SetTimestamp(msToTs(p.t))
		if value.IsStaleNaN(v) {
			dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		} else {
			dp.SetDoubleValue(v)
		}
		b.stats.DataPoints++
	}
	for _, v := range vals {
		if ms.kind == kHistogram {
			add(fam+"_bucket", labelLe, v.label, v.v)
		} else {
			add(fam, labelQuantile, v.label, v.v)
		}
	}
	if p.hasSum {
		add(fam+"_sum", "", "", p.sum)
	}
	if p.hasCt {
		add(fam+"_count", "", "", p.count)
	}
	b.pruneEmpty = true
}

// prune removes metrics, scopes and resources left without points (a
// histogram whose only point was split into gauges).
func (b *batch) prune() {
	b.out.ResourceMetrics().RemoveIf(func(rm pmetric.ResourceMetrics) bool {
		rm.ScopeMetrics().RemoveIf(func(sm pmetric.ScopeMetrics) bool {
			sm.Metrics().RemoveIf(func(m pmetric.Metric) bool {
				switch m.Type() {
				case pmetric.MetricTypeHistogram:
					return m.Histogram().DataPoints().Len() == 0
				case pmetric.MetricTypeSummary:
					return m.Summary().DataPoints().Len() == 0
				}
				return false
			})
			return sm.Metrics().Len() == 0
		})
		return rm.ScopeMetrics().Len() == 0
	})
}

// finishResources applies target_info and otel_scope_info labels, from this
// request or remembered from earlier ones, and remembers this request's.
func (b *batch) finishResources() {
	for k, ls := range b.targets {
		b.t.targets.put(k, cloneLabels(ls))
	}
	for i := range b.res {
		r := &b.res[i]
		ls, ok := b.targets[r.key]
		if !ok {
			ls, ok = b.t.targets.get(r.key)
		}
		if !ok {
			continue
		}
		attrs := r.rm.Resource().Attributes()
		for _, l := range ls {
			switch l.Name {
			case labelName, labelJob, labelInstance:
				continue
			}
			if _, exists := attrs.Get(l.Name); !exists {
				attrs.PutStr(l.Name, l.Value)
			}
		}
	}
	for k, ls := range b.scopeAt {
		res, ok := b.resIdx[k.res]
		if !ok {
			continue
		}
		i, ok := b.scopeIdx[scopeKey{res, k.name, k.version}]
		if !ok {
			continue
		}
		attrs := b.scopes[i].Scope().Attributes()
		for _, l := range ls {
			switch l.Name {
			case labelName, labelJob, labelInstance, labelScopeName, labelScopeVer:
				continue
			}
			attrs.PutStr(l.Name, l.Value)
		}
	}
}

func cloneLabels(ls []prompb.Label) []prompb.Label {
	out := make([]prompb.Label, len(ls))
	copy(out, ls)
	return out
}
