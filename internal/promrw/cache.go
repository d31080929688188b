package promrw

import "sync"

// genCache is a bounded map with two generations, in the style of
// VictoriaMetrics' caches: writes go to the current generation; when it holds
// half the budget it becomes the previous one and the older previous one is
// dropped whole. A hit in the previous generation is copied forward, so
// entries in use survive rotation. No list, no per-entry bookkeeping, O(1),
// and never more than max entries. Safe for concurrent use.
type genCache[K comparable, V any] struct {
	mu        sync.Mutex
	half      int
	cur, prev map[K]V
	evicted   uint64
}

func newGenCache[K comparable, V any](maxEntries int) *genCache[K, V] {
	half := max(maxEntries/2, 1)
	return &genCache[K, V]{half: half, cur: make(map[K]V), prev: make(map[K]V)}
}

func (c *genCache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	v, ok := c.prev[k]
	if ok {
		c.putLocked(k, v)
	}
	return v, ok
}

func (c *genCache[K, V]) put(k K, v V) {
	c.mu.Lock()
	c.putLocked(k, v)
	c.mu.Unlock()
}

func (c *genCache[K, V]) putLocked(k K, v V) {
	if _, ok := c.cur[k]; !ok && len(c.cur) >= c.half {
		c.evicted += uint64(len(c.prev))
		c.prev, c.cur = c.cur, make(map[K]V, c.half)
	}
	c.cur[k] = v
}

// len returns the number of distinct entries held (an upper bound: a key may
// sit in both generations).
func (c *genCache[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}
