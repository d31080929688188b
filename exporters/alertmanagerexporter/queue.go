package alertmanagerexporter

import "sync"

// queue holds alerts waiting to be sent, bounded: when full, the oldest are
// dropped to make room, as Prometheus's notifier does (the newest state of an
// alert is the one worth sending). Safe for concurrent use.
type queue struct {
	mu    sync.Mutex
	items []postableAlert
	size  int
	// more has one slot: a push wakes the sender without ever blocking.
	more chan struct{}
}

func newQueue(size int) *queue {
	return &queue{size: size, items: make([]postableAlert, 0, min(size, 1024)), more: make(chan struct{}, 1)}
}

// push appends alerts and returns how many queued alerts were dropped.
func (q *queue) push(alerts []postableAlert) (dropped int) {
	if len(alerts) == 0 {
		return 0
	}
	q.mu.Lock()
	if len(alerts) > q.size {
		dropped = len(alerts) - q.size
		alerts = alerts[dropped:]
	}
	if over := len(q.items) + len(alerts) - q.size; over > 0 {
		n := copy(q.items, q.items[over:])
		clear(q.items[n:])
		q.items = q.items[:n]
		dropped += over
	}
	q.items = append(q.items, alerts...)
	q.mu.Unlock()
	select {
	case q.more <- struct{}{}:
	default:
	}
	return dropped
}

// pop removes and returns up to n of the oldest alerts.
func (q *queue) pop(n int) []postableAlert {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.items))
	if n == 0 {
		return nil
	}
	out := make([]postableAlert, n)
	copy(out, q.items)
	rest := copy(q.items, q.items[n:])
	clear(q.items[rest:])
	q.items = q.items[:rest]
	return out
}

// len returns the number of queued alerts.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
