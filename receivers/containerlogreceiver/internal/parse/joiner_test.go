package parse

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// notContinuation begins a record at a line that does not start with
// whitespace or "Ca" (Caused by:), the usual rule for Java stack traces.
var notContinuation = regexp.MustCompile(`^(?:[^\sC.]|C(?:[^a]|a[^u]))`)

// joinAll feeds lines to j and returns the records it gives, flushed at the
// end.
func joinAll(j *Joiner, lines ...string) []string {
	var out []string
	for _, l := range lines {
		if rec, ok := j.Add([]byte(l)); ok {
			out = append(out, string(rec))
		}
	}
	if rec, ok := j.Flush(); ok {
		out = append(out, string(rec))
	}
	return out
}

func TestJoiner(t *testing.T) {
	trace := []string{
		`2024-01-15 10:30:00 ERROR request failed`,
		`java.lang.IllegalStateException: boom`,
		"\tat com.example.Foo.bar(Foo.java:42)",
		"\tat com.example.Main.main(Main.java:7)",
		`Caused by: java.io.IOException: closed`,
		"\t... 2 more",
		`2024-01-15 10:30:01 INFO next`,
	}
	tests := []struct {
		name               string
		start              *regexp.Regexp
		maxLines, maxBytes int
		lines              []string
		want               []string
		wantStats          JoinerStats
	}{
		{
			name: "stack trace", start: notContinuation, maxLines: 100, maxBytes: 1 << 20,
			lines: trace,
			want: []string{
				"2024-01-15 10:30:00 ERROR request failed",
				"java.lang.IllegalStateException: boom\n\tat com.example.Foo.bar(Foo.java:42)\n\tat com.example.Main.main(Main.java:7)\nCaused by: java.io.IOException: closed\n\t... 2 more",
				"2024-01-15 10:30:01 INFO next",
			},
		},
		{
			name: "timestamp starts a record", start: regexp.MustCompile(`^\d{4}-\d{2}-\d{2} `), maxLines: 100, maxBytes: 1 << 20,
			lines: trace,
			want: []string{
				strings.Join(trace[:6], "\n"),
				trace[6],
			},
		},
		{
			name: "orphan continuation lines make a record", start: notContinuation, maxLines: 10, maxBytes: 100,
			lines: []string{"\tat a", "\tat b", "start", "\tat c"},
			want:  []string{"\tat a\n\tat b", "start\n\tat c"},
		},
		{
			name: "empty lines", start: notContinuation, maxLines: 10, maxBytes: 100,
			lines: []string{"", "", "a", ""},
			want:  []string{"\n", "a\n"}, // "" does not match start
		},
		{
			name: "nil start: every line is a record", maxLines: 10, maxBytes: 100,
			lines: []string{"a", " b", "c"},
			want:  []string{"a", " b", "c"},
		},
		{
			name: "maxLines cuts", start: notContinuation, maxLines: 2, maxBytes: 100,
			lines:     []string{"a", " 1", " 2", " 3", " 4", " 5", "b"},
			want:      []string{"a\n 1", " 2\n 3", " 4\n 5", "b"},
			wantStats: JoinerStats{Split: 2},
		},
		{
			name: "maxBytes cuts, separators counted", start: notContinuation, maxLines: 100, maxBytes: 7,
			lines:     []string{"abc", " de", " f", " ghijkl", "x"},
			want:      []string{"abc\n de", " f", " ghijkl", "x"},
			wantStats: JoinerStats{Split: 2},
		},
		{
			name: "a line longer than maxBytes is truncated", start: notContinuation, maxLines: 100, maxBytes: 4,
			lines:     []string{"abcdefgh", " 12345", "x"},
			want:      []string{"abcd", " 123", "x"},
			wantStats: JoinerStats{Split: 1, Truncated: 2, TruncatedBytes: 6},
		},
		{
			name: "truncation keeps UTF-8 whole", start: notContinuation, maxLines: 100, maxBytes: 4,
			lines:     []string{"ab€cd"}, // € is 3 bytes, at 2..4
			want:      []string{"ab"},
			wantStats: JoinerStats{Truncated: 1, TruncatedBytes: 5},
		},
		{
			name: "limits below 1 are 1", start: notContinuation, maxLines: 0, maxBytes: -1,
			lines:     []string{"ab", " c"},
			want:      []string{"a", " "},
			wantStats: JoinerStats{Split: 1, Truncated: 2, TruncatedBytes: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := NewJoiner(tt.start, tt.maxLines, tt.maxBytes)
			assert.Equal(t, tt.want, joinAll(j, tt.lines...))
			assert.Equal(t, tt.wantStats, j.Stats())
			_, ok := j.Flush()
			assert.False(t, ok, "nothing pending after Flush")
		})
	}
}

func TestJoinerCopiesLines(t *testing.T) {
	j := NewJoiner(notContinuation, 10, 100)
	line := []byte("first")
	j.Add(line)
	copy(line, "XXXXX")
	rec, ok := j.Flush()
	assert.True(t, ok)
	assert.Equal(t, "first", string(rec))
}

func TestJoinerNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations differ under the race detector")
	}
	j := NewJoiner(notContinuation, 100, 1<<16)
	lines := [][]byte{[]byte("java.lang.Exception: x"), []byte("\tat a.b(C.java:1)"), []byte("\tat d.e(F.java:2)")}
	for range 3 {
		for _, l := range lines {
			j.Add(l)
		}
	}
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		for _, l := range lines {
			j.Add(l)
		}
	}))
}

// Shrink lets go of the buffers a long record grew, and only when nothing is
// pending.
func TestJoinerShrink(t *testing.T) {
	j := NewJoiner(regexp.MustCompile(`^\S`), 1000, 1<<20)
	j.Add([]byte("Exception"))
	for range 100 {
		j.Add([]byte("\tat " + strings.Repeat("f", 1000)))
	}
	j.Shrink(1 << 10)
	rec, ok := j.Flush()
	if !ok || len(rec) < 100*1000 {
		t.Fatalf("the pending record was lost to Shrink: %d bytes", len(rec))
	}
	j.Shrink(1 << 10)
	if cap(j.cur) > 1<<10 || cap(j.out) > 1<<10 {
		t.Fatalf("buffers kept: cur %d, out %d", cap(j.cur), cap(j.out))
	}
	j.Add([]byte("next"))
	if rec, ok := j.Flush(); !ok || string(rec) != "next" {
		t.Fatalf("after Shrink: %q %v", rec, ok)
	}
}

// A long record's buffer is let go of once it is returned, though the next
// record is pending (a busy file ends each trace with the next one's first
// line, never with a flush).
func TestJoinerShrinkAfterEmit(t *testing.T) {
	j := NewJoiner(regexp.MustCompile(`^\S`), 1000, 1<<20)
	j.Add([]byte("Exception"))
	for range 100 {
		j.Add([]byte("\tat " + strings.Repeat("f", 1000)))
	}
	rec, ok := j.Add([]byte("next record"))
	if !ok || len(rec) < 100*1000 {
		t.Fatalf("record: %d bytes, %v", len(rec), ok)
	}
	j.Shrink(1 << 10)
	if cap(j.out) > 1<<10 || cap(j.cur) > 1<<10 {
		t.Fatalf("buffers kept: cur %d, out %d", cap(j.cur), cap(j.out))
	}
	if rec, ok := j.Flush(); !ok || string(rec) != "next record" {
		t.Fatalf("pending record after Shrink: %q %v", rec, ok)
	}
}
