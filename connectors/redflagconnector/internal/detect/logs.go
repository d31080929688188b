package detect

import (
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// logState tracks a service's error logs: counts in ten-second buckets, a
// baseline rate, and a bounded set of message templates.
type logState struct {
	epoch     [NumBuckets]int64
	errs      [NumBuckets]uint32
	base      ewma // error logs per bucket
	learner   learner
	templates map[string]*template
	ev        logEval
	trace     [16]byte
}

type template struct {
	firstBucket, lastBucket int64
	epoch                   [NumBuckets]int64
	n                       [NumBuckets]uint32
}

type logEval struct {
	count5, count1 uint32
	burst, keep    bool
	expected       float64
	newTemplate    string // a template first seen recently that is bursting
	newCount       uint32
	topTemplate    string
}

func (l *logState) apply(bk int64, d *LogDelta, maxTemplates int) {
	if d.Errors == 0 {
		return
	}
	i := bk % NumBuckets
	if l.epoch[i] != bk {
		l.epoch[i], l.errs[i] = bk, 0
	}
	l.errs[i] += d.Errors
	if d.ErrTrace != ([16]byte{}) {
		l.trace = d.ErrTrace
	}
	if l.templates == nil {
		l.templates = map[string]*template{}
	}
	for t, n := range d.Templates {
		tp, ok := l.templates[t]
		if !ok {
			if len(l.templates) >= maxTemplates {
				l.evictOldest()
			}
			tp = &template{firstBucket: bk}
			l.templates[strings.Clone(t)] = tp
		}
		tp.lastBucket = bk
		if tp.epoch[i] != bk {
			tp.epoch[i], tp.n[i] = bk, 0
		}
		tp.n[i] += n
	}
}

func (l *logState) evictOldest() {
	var oldest string
	var ob int64 = 1<<63 - 1
	for k, t := range l.templates {
		if t.lastBucket < ob {
			oldest, ob = k, t.lastBucket
		}
	}
	delete(l.templates, oldest)
}

func sumBuckets(epoch *[NumBuckets]int64, n *[NumBuckets]uint32, bk int64, k int) uint32 {
	var s uint32
	for b := bk - int64(k) + 1; b <= bk; b++ {
		i := b % NumBuckets
		if b >= 0 && epoch[i] == b {
			s += n[i]
		}
	}
	return s
}

func (l *logState) evaluate(cfg ErrorLogBurstConfig, bk int64, minInfo float64) {
	ev := &l.ev
	ev.count5 = sumBuckets(&l.epoch, &l.errs, bk, NumBuckets)
	ev.count1 = sumBuckets(&l.epoch, &l.errs, bk, 6)
	// Until the baseline has five minutes of history, expect at least one error
	// log per bucket, so a quiet new service does not "burst" on its first few.
	perBucket := l.base.v
	if !l.base.ready(30) {
		perBucket = max(perBucket, 1)
	}
	ev.expected = perBucket * NumBuckets
	lambda := max(ev.expected, 1)
	ev.burst = ev.count5 >= cfg.MinCount && float64(ev.count5) >= cfg.Factor*lambda &&
		float64(ev.count1)*5 >= cfg.Factor*lambda && poissonSignificant(float64(ev.count5), lambda, minInfo)
	ev.keep = float64(ev.count1)*5 >= cfg.Factor*lambda/2
	ev.newTemplate, ev.topTemplate = "", ""
	var top uint32
	type tc struct {
		t     string
		n, n1 uint32
	}
	var fresh []tc
	for k, t := range l.templates {
		n := sumBuckets(&t.epoch, &t.n, bk, NumBuckets)
		if n > top {
			top, ev.topTemplate = n, k
		}
		if bk-t.firstBucket <= 60 && n >= cfg.MinCount && t.firstBucket > l.firstBucketSeen() {
			fresh = append(fresh, tc{k, n, sumBuckets(&t.epoch, &t.n, bk, 6)})
		}
	}
	sort.Slice(fresh, func(i, j int) bool {
		return fresh[i].n > fresh[j].n || fresh[i].n == fresh[j].n && fresh[i].t < fresh[j].t
	})
	if len(fresh) > 0 {
		ev.newTemplate, ev.newCount = fresh[0].t, fresh[0].n
		// A new kind of error bursting alerts even below the total-rate threshold.
		// It must still be bursting in the last minute.
		if ev.newCount >= 2*cfg.MinCount && fresh[0].n1*5 >= cfg.MinCount && poissonSignificant(float64(ev.newCount), 1, minInfo) {
			ev.burst = true
		}
	}
}

// firstBucketSeen is the first bucket with templates; templates present from
// the start are not "new".
func (l *logState) firstBucketSeen() int64 {
	first := int64(1<<63 - 1)
	for _, t := range l.templates {
		first = min(first, t.firstBucket)
	}
	return first
}

func (l *logState) learn(bk int64, dt, halfLife time.Duration) {
	// One sample per bucket, a minute behind the present and only from
	// quiet stretches (see learner), so a burst's first buckets do not
	// raise its own expectation.
	from, to, ok := l.learner.due(bk, l.ev.burst, bk-lagLearn)
	if !ok {
		return
	}
	for b := from; b <= to; b++ {
		i := b % NumBuckets
		var n uint32
		if b >= 0 && l.epoch[i] == b {
			n = l.errs[i]
		}
		l.base.update(float64(n), BucketWidth, halfLife)
	}
}

// Template reduces a log message to its template: words that carry variable
// data (numbers, hex, IDs, quoted strings, paths, addresses) become "<*>", and
// only the first 12 tokens count. It is the grouping step of Drain without the
// tree: cheap and bounded, and good enough to tell "a new kind of error" apart.
func Template(msg string) string {
	var b strings.Builder
	b.Grow(min(len(msg), 128))
	n := 0
	for tok := range strings.FieldsSeq(msg) {
		if n == 12 {
			break
		}
		if n > 0 {
			b.WriteByte(' ')
		}
		if variable(tok) {
			b.WriteString("<*>")
		} else {
			b.WriteString(tok)
		}
		n++
	}
	return b.String()
}

func variable(tok string) bool {
	if len(tok) > 40 || strings.ContainsAny(tok, "/=:@\"'") {
		return true
	}
	digits, hex := 0, 0
	for _, r := range tok {
		switch {
		case unicode.IsDigit(r):
			digits++
		case strings.ContainsRune("abcdefABCDEF-", r):
			hex++
		}
	}
	n := utf8.RuneCountInString(tok)
	return digits > 0 && (digits*3 >= n || digits+hex == n)
}
