package simulate

const (
	evArrival uint8 = iota
	evDeliver
	evCPUDone
	evResponse
	evTimeout
	evRetry
	evExtArrive
	evExtDone
	evPoolTimeout
	evMetrics
	evEffectOn
	evEffectOff
	evDeployStart
	evDeployReady
	evLagEnd
	evResume
)

// ref names one attempt of a call; it goes stale when the attempt resolves
// or the call is recycled, so late events for it are ignored.
type ref struct {
	c       *call
	gen     uint32
	attempt int32
}

func (r ref) live() bool {
	return r.c != nil && r.c.gen == r.gen && r.c.attempt == r.attempt && !r.c.done
}

type event struct {
	at   int64
	seq  uint64
	kind uint8
	n    int32
	ref  ref
	r    *request
	inst *instance
	aux  *instance
	ext  *external
	res  result
}

// eventHeap is a binary min-heap on (at, seq); seq makes ties deterministic.
type eventHeap []event

func (h eventHeap) less(i, j int) bool {
	return h[i].at < h[j].at || (h[i].at == h[j].at && h[i].seq < h[j].seq)
}

func (h *eventHeap) push(e event) {
	*h = append(*h, e)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *eventHeap) pop() event {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a[n] = event{}
	a = a[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && a.less(r, l) {
			m = r
		}
		if !a.less(m, i) {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}
