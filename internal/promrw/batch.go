package promrw

import (
	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

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
