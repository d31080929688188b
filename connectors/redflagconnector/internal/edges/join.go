package edges

import (
	"sort"
	"strings"
	"time"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
)

// joinEntry collects the client spans of one inbound request (by its server
// span's ID) until that server span arrives: the calls it made, per callee
// and operation, and the time they covered.
type joinEntry struct {
	service string
	nc, ni  uint8
	calls   [8]joinCall
	iv      [8]interval
}

// joinCall is one operation on one callee inside a request: attempts beyond
// the first that its instrumentation did not flag as resends are retries.
type joinCall struct {
	callee                               string
	op                                   uint64
	attempts, flags, failures, cancelled uint16
}

// interval is the time a child call covered, in Unix nanoseconds.
type interval struct{ s, e int64 }

func (e *joinEntry) addCall(callee string, op uint64, retry, failed, canc bool) {
	var c *joinCall
	for j := 0; j < int(e.nc); j++ {
		if e.calls[j].op == op && e.calls[j].callee == callee {
			c = &e.calls[j]
			break
		}
	}
	if c == nil {
		if int(e.nc) == len(e.calls) {
			return
		}
		e.calls[e.nc] = joinCall{callee: callee, op: op}
		c = &e.calls[e.nc]
		e.nc++
	}
	c.attempts++
	if retry {
		c.flags++
	}
	if failed {
		c.failures++
	}
	if canc {
		c.cancelled++
	}
}

// addInterval adds a child's span to the covered time, merging overlaps; a
// full list merges its two closest neighbours (the gap between them then
// counts as covered, so exclusive time is underestimated, never inflated).
func (e *joinEntry) addInterval(s, end int64) {
	if end <= s {
		return
	}
	iv := e.iv[:e.ni]
	i := sort.Search(len(iv), func(i int) bool { return iv[i].s > s })
	// Merge with the previous and following intervals it overlaps.
	if i > 0 && iv[i-1].e >= s {
		i--
		iv[i].e = max(iv[i].e, end)
	} else {
		if int(e.ni) == len(e.iv) {
			e.squeeze()
			e.addInterval(s, end)
			return
		}
		copy(e.iv[i+1:e.ni+1], e.iv[i:e.ni])
		e.iv[i] = interval{s, end}
		e.ni++
		iv = e.iv[:e.ni]
	}
	for i+1 < len(iv) && iv[i+1].s <= iv[i].e {
		iv[i].e = max(iv[i].e, iv[i+1].e)
		copy(iv[i+1:], iv[i+2:])
		e.ni--
		iv = e.iv[:e.ni]
	}
}

// squeeze merges the two neighbouring intervals with the smallest gap.
func (e *joinEntry) squeeze() {
	best, gap := 0, int64(1<<63-1)
	for i := 0; i+1 < int(e.ni); i++ {
		if g := e.iv[i+1].s - e.iv[i].e; g < gap {
			best, gap = i, g
		}
	}
	e.iv[best].e = e.iv[best+1].e
	copy(e.iv[best+1:e.ni], e.iv[best+2:e.ni])
	e.ni--
}

// covered is how much of [s, end] the children's spans cover.
func (e *joinEntry) covered(s, end int64) int64 {
	var c int64
	for _, iv := range e.iv[:e.ni] {
		lo, hi := max(iv.s, s), min(iv.e, end)
		if hi > lo {
			c += hi - lo
		}
	}
	return c
}

// joinOp is a span that takes part in a join, applied under the lock.
type joinOp struct {
	server     bool
	service    string
	callee     string
	id, parent uint64 // the span's own ID and its parent's
	op         uint64 // client: the operation (see opHash)
	start, end int64
	failed     bool
	cancelled  bool
	retry      bool
	// inProcess: a client span in the join sample (its parent's ID is);
	// learn: a client span to wait for its child server span in another
	// service (the callee's name is not tied to a service yet).
	inProcess, learn bool
}

// join applies the batch's join operations: client spans wait in the cache
// for their parent's server span; a server span completes its entry.
func (x *Extractor) join(now time.Time, ops []joinOp, b *detect.Batch, bi *batchIndex, bc *batchClaims) {
	if len(ops) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if now.Sub(x.rotated) >= x.set.JoinTTL {
		x.stats.Expired += uint64(len(x.prev))
		x.prev, x.cur = x.cur, make(map[uint64]*joinEntry, len(x.cur))
		x.prevCl, x.clients = x.clients, make(map[uint64]clientRef, len(x.clients))
		x.rotated = now
		for n, t := range x.learned {
			if now.Unix()-t > learnAgain {
				delete(x.learned, n)
			}
		}
	}
	// Clients first: a batch often holds a request's children and its server span.
	for i := range ops {
		op := &ops[i]
		if op.server {
			continue
		}
		if op.learn && len(x.clients) < x.set.MaxJoinEntries {
			// Wait for the child server span of one call per name and
			// second until a join ties the name to a service: a name that
			// never joins (an external API) costs little.
			if _, ok := x.learned[op.callee]; !ok && x.tried[op.callee] != now.Unix() {
				if len(x.tried) >= x.set.MaxJoinEntries {
					clear(x.tried)
				}
				x.tried[op.callee] = now.Unix()
				x.clients[op.id] = clientRef{caller: op.service, callee: op.callee}
			}
		}
		if !op.inProcess {
			continue
		}
		// A client span with client spans beneath it in its own process
		// (a publish that runs an INSERT, an SDK call that makes HTTP
		// calls) wraps them: its time is theirs.
		if w := x.cur[op.id]; w != nil && w.service == op.service && w.nc > 0 {
			d := bi.edge(b, op.service, op.callee)
			if d.Wraps == "" {
				d.Wraps = w.calls[0].callee
			}
			delete(x.cur, op.id)
			x.freeEntry(w)
		}
		e := x.cur[op.parent]
		if e == nil {
			e = x.prev[op.parent]
		}
		if e == nil {
			if len(x.cur) >= x.set.MaxJoinEntries {
				x.stats.JoinDropped++
				continue
			}
			e = x.newEntry(op.service)
			x.cur[op.parent] = e
		}
		e.addCall(op.callee, op.op, op.retry, op.failed, op.cancelled)
		e.addInterval(op.start, op.end)
	}
	for i := range ops {
		op := &ops[i]
		if !op.server {
			continue
		}
		// This server span's parent is a client span of another service:
		// the name that client called is this service.
		if ref, ok := x.clients[op.parent]; ok || x.lookupPrevClient(op.parent, &ref) {
			if ref.caller != op.service && ref.callee != op.service {
				if _, known := x.learned[ref.callee]; !known && len(x.learned) < 4*x.set.MaxJoinEntries {
					x.learned[strings.Clone(ref.callee)] = now.Unix()
				}
				bc.add(ref.callee, op.service, detect.ClaimJoin)
			}
			delete(x.clients, op.parent)
		}
		if !op.inProcess {
			continue
		}
		e := x.cur[op.id]
		if e != nil {
			delete(x.cur, op.id)
		} else if e = x.prev[op.id]; e != nil {
			delete(x.prev, op.id)
		}
		sd := bi.service(b, op.service)
		sd.Joined++
		dur := op.end - op.start
		if e == nil || e.service != op.service {
			if e != nil {
				x.freeEntry(e)
			}
			// No call beneath it: all its time is its own.
			sd.Self[detect.BinOf(float64(dur)/1e6)]++
			if op.failed {
				sd.JoinedErr++
				sd.OwnErrors++
			}
			continue
		}
		self := dur - e.covered(op.start, op.end)
		sd.Self[detect.BinOf(float64(max(self, 0))/1e6)]++
		childFailed := false
		// Per callee: the request called it (once), how often, with how
		// many retries, and whether every attempt of some operation failed.
		for j := 0; j < int(e.nc); j++ {
			c := &e.calls[j]
			first := true
			for k := 0; k < j; k++ {
				if e.calls[k].callee == c.callee {
					first = false
					break
				}
			}
			if !first {
				continue
			}
			d := bi.edge(b, op.service, c.callee)
			d.JoinedParents++
			d.JoinedParentMs += float32(dur) / 1e6
			failed := false
			for k := j; k < int(e.nc); k++ {
				ck := &e.calls[k]
				if ck.callee != c.callee {
					continue
				}
				d.JoinedCalls += uint32(ck.attempts)
				if extra := int(ck.attempts) - 1 - int(ck.flags) - int(ck.cancelled); extra > 0 {
					d.Retries += uint32(extra)
				}
				if ck.failures > 0 && ck.failures >= ck.attempts-ck.cancelled {
					failed = true
				}
			}
			if failed {
				childFailed = true
				d.JoinedErr++
				if op.failed {
					d.JoinedPropagated++
				}
			}
		}
		if op.failed {
			sd.JoinedErr++
			if !childFailed {
				sd.OwnErrors++
			}
		}
		x.freeEntry(e)
	}
}

// newEntry takes an entry from the free list (under x.mu).
func (x *Extractor) newEntry(service string) *joinEntry {
	if n := len(x.free); n > 0 {
		e := x.free[n-1]
		x.free = x.free[:n-1]
		*e = joinEntry{service: service}
		return e
	}
	return &joinEntry{service: service}
}

// freeEntry returns a completed entry to the free list (under x.mu), up to a
// bound: entries are made and done with at the rate of requests.
func (x *Extractor) freeEntry(e *joinEntry) {
	if len(x.free) < maxFreeEntries {
		x.free = append(x.free, e)
	}
}

const maxFreeEntries = 4096

// learnAgain is how long (seconds) a name tied to a service by a join stays
// learned before joins confirm it again (a pod IP may be reused).
const learnAgain = 120

func (x *Extractor) lookupPrevClient(id uint64, ref *clientRef) bool {
	r, ok := x.prevCl[id]
	if ok {
		*ref = r
		delete(x.prevCl, id)
	}
	return ok
}
