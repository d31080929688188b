package tailsamplingprocessor

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/cache"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/policy"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/store"
)

func newCache(size *int, def int) *cache.IDSet {
	n := def
	if size != nil {
		n = *size
	}
	if n <= 0 {
		return nil
	}
	return cache.NewIDSet(n)
}

// memoryBudget is memory_limit_mib, or a quarter of the container's memory
// limit, or 512 MiB.
func memoryBudget(mib uint64) int64 {
	if mib > 0 {
		return int64(mib) << 20
	}
	self, _ := os.ReadFile("/proc/self/cgroup")
	for _, f := range cgroupLimitFiles(string(self)) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && n < 1<<50 {
			return max(n/4, 16<<20)
		}
	}
	return 512 << 20
}

// cgroupLimitFiles lists the files that may hold this process's memory
// limit, its own cgroup's first (from /proc/self/cgroup: "0::/path" for
// cgroup v2, "N:memory:/path" for v1), then the root's, which is the
// container's own inside a cgroup namespace. Reading only the root's missed
// a limit set on the process's cgroup outside a namespace (a systemd unit's
// MemoryMax=, a child cgroup), as the memory_limiter does not.
func cgroupLimitFiles(procSelfCgroup string) []string {
	var files []string
	for _, line := range strings.Split(procSelfCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[2] == "/" || strings.Contains(parts[2], "..") {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			files = append(files, "/sys/fs/cgroup"+parts[2]+"/memory.max")
		case strings.Contains(","+parts[1]+",", ",memory,"):
			files = append(files, "/sys/fs/cgroup/memory"+parts[2]+"/memory.limit_in_bytes")
		}
	}
	return append(files, "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
}

func (p *sampler) tickOf(t time.Time) int64 { return int64(t.Sub(p.origin) / p.tick) }

// apply merges a collected batch into the trace table. Locked. restored is
// non-zero when replaying saved traces: their first-seen time and remaining
// wait come from the save.
func (p *sampler) apply(now time.Time, w *ingest, remaining time.Duration, firstSeen time.Time) {
	nowTick := p.tickOf(now)
	for gi := range w.groups {
		g := &w.groups[gi]
		id := g.tid
		i, ok := p.store.Lookup(id)
		if !ok {
			if p.sampled != nil && p.sampled.Contains(id) {
				rec := uint32(0)
				if p.recordPolicy {
					// As upstream: the policy, not the composite sub-policy.
					rec = recCached | p.sampled.Tag(id)&recPolicyMask
				}
				w.eachSegment(g, p.store.MaxBody(), func(hdr, body []byte) { p.appendOut(id, noThreshold, rec, hdr, body) })
				p.lateSampled += int64(g.sum.SpanCount)
				continue
			}
			if p.notSampled != nil && p.notSampled.Contains(id) {
				p.lateDropped += int64(g.sum.SpanCount)
				continue
			}
			for p.store.Len() >= p.maxTraces {
				o, ok := p.store.Oldest(nowTick)
				if !ok {
					break
				}
				p.decide(o, now, reasonTraces)
			}
			decide := nowTick + p.waitTicks
			seen := now
			if !firstSeen.IsZero() {
				decide, seen = nowTick+int64(remaining/p.tick)+1, firstSeen
			}
			i = p.store.Create(id, nowTick, decide)
			p.store.Summary(i).FirstSeen = seen.UnixNano()
			p.newTraces++
		}
		sum := p.store.Summary(i)
		var before store.Summary
		if p.comp.HasOTTL() {
			before = *sum
		}
		sum.Merge(&g.sum)
		if p.comp.HasLatency() {
			for r := g.first; r >= 0; r = w.recs[r].next {
				p.comp.ObserveTimes(sum, w.recs[r].startNs, w.recs[r].endNs)
			}
		}
		if p.comp.HasOTTL() {
			p.comp.FirstEvent(&before, sum)
		}
		if g.sum.Root && p.rootWait > 0 {
			p.store.Reschedule(i, nowTick, nowTick+p.rootWait)
		}
		if p.spanIngest {
			switch d := p.ingestDecision(g, sum, now); d {
			case policy.Sampled, policy.Dropped:
				p.finish(i, d, now, w, g)
				continue
			}
		}
		if !p.keep(i, g, w, now) {
			continue // decided at once: a span too large for the arena
		}
		if p.cfg.MaximumTraceSizeBytes > 0 && sum.Bytes > p.cfg.MaximumTraceSizeBytes {
			p.tooLarge++
			p.finish(i, policy.NotSampled, now, nil, nil)
		}
	}
}

// keep writes a group's spans into the arena as segments, deciding the
// oldest traces early while the budget is full. It returns false when the
// trace itself had to be decided now (it is then gone). Locked.
func (p *sampler) keep(i uint32, g *group, w *ingest, now time.Time) bool {
	ok := true
	w.eachSegment(g, p.store.MaxBody(), func(hdr, body []byte) {
		if !ok {
			return
		}
		if len(body) > p.store.MaxBody() {
			// One span larger than an arena chunk: decide the trace now with it.
			p.early[reasonOversized]++
			p.decideWith(i, now, hdr, body)
			ok = false
			return
		}
		for p.store.HeaderBytes() > p.budget/10 || !p.store.Append(i, hdr, body) {
			o, found := p.store.Oldest(p.tickOf(now))
			if !found || o == i {
				p.early[reasonMemory]++
				p.decideWith(i, now, hdr, body)
				ok = false
				return
			}
			p.early[reasonMemory]++
			p.decide(o, now, reasonMemory)
		}
	})
	return ok
}
