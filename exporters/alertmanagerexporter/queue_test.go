package alertmanagerexporter

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func names(as []postableAlert) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Labels["n"]
	}
	return out
}

func alertsNamed(from, to int) []postableAlert {
	var out []postableAlert
	for i := from; i < to; i++ {
		out = append(out, postableAlert{Labels: map[string]string{"n": fmt.Sprint(i)}})
	}
	return out
}

func TestQueueDropsTheOldest(t *testing.T) {
	q := newQueue(10)
	assert.Zero(t, q.push(alertsNamed(0, 6)))
	assert.Equal(t, 2, q.push(alertsNamed(6, 12)), "two oldest make room")
	assert.Equal(t, 10, q.len())
	assert.Equal(t, []string{"2", "3", "4"}, names(q.pop(3)), "oldest first")
	assert.Equal(t, 17, q.push(alertsNamed(12, 32)), "a push larger than the queue keeps its newest; the seven queued go too")
	assert.Equal(t, []string{"22", "23", "24", "25", "26", "27", "28", "29", "30", "31"}, names(q.pop(100)))
	assert.Nil(t, q.pop(5))
	select {
	case <-q.more:
	default:
		t.Fatal("a push wakes the sender")
	}
}
