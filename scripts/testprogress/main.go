// Command testprogress reads `go test -json` on stdin and shows progress as
// the tests run: a test that runs for more than a few seconds is named while
// it runs and again when it ends, every skip with its reason, every failure
// with its output, and each package's result. It exits non-zero when a test
// or a package failed, or when the stream ended before a package's result
// (the go command died). `make test` pipes through it, so the long
// end-to-end package is no longer silent for minutes.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time       time.Time
	Action     string
	Package    string
	ImportPath string // build-output and build-fail events
	Test       string
	Elapsed    float64
	Output     string
}

// slow is how long a test runs before it is named as running.
const slow = 5 * time.Second

// maxOutput bounds what is kept of one test's or package's output, for
// printing it if it fails (the end, where failures are reported, is kept).
const maxOutput = 256 << 10

type test struct {
	started time.Time
	shown   bool
	out     []string
	size    int
}

func (t *test) add(line string) {
	t.out = append(t.out, line)
	t.size += len(line)
	for t.size > maxOutput && len(t.out) > 1 {
		t.size -= len(t.out[0])
		t.out = t.out[1:]
	}
}

type progress struct {
	mu      sync.Mutex
	w       io.Writer
	running map[string]*test // by package + " " + top-level test
	pkgs    map[string]*test // package output
	started map[string]bool  // packages that started
	ended   map[string]bool  // packages with a result
	failed  bool
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, running: map[string]*test{}, pkgs: map[string]*test{}, started: map[string]bool{}, ended: map[string]bool{}}
}

func short(pkg string) string {
	if i := strings.Index(pkg, "/vigil/"); i >= 0 {
		return pkg[i+len("/vigil/"):]
	}
	return pkg
}

func (p *progress) handle(e event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Action {
	case "build-output":
		fmt.Fprint(p.w, e.Output)
		return
	case "build-fail":
		p.failed = true
		return
	}
	if e.Package == "" {
		if e.Output != "" {
			fmt.Fprint(p.w, e.Output)
		}
		return
	}
	p.started[e.Package] = true
	top, sub, _ := strings.Cut(e.Test, "/")
	if e.Test == "" {
		pk := p.pkgs[e.Package]
		if pk == nil {
			pk = &test{}
			p.pkgs[e.Package] = pk
		}
		switch e.Action {
		case "output":
			pk.add(e.Output)
		case "pass", "skip":
			p.ended[e.Package] = true
			fmt.Fprintf(p.w, "ok  \t%s\t%.1fs\n", e.Package, e.Elapsed)
			delete(p.pkgs, e.Package)
		case "fail":
			p.ended[e.Package] = true
			p.failed = true
			// A package's own output holds what no test owns: a build
			// error, a panic, a timeout's goroutine dump.
			for _, l := range pk.out {
				if !strings.HasPrefix(l, "FAIL\t"+e.Package) { // printed below
					fmt.Fprint(p.w, l)
				}
			}
			fmt.Fprintf(p.w, "FAIL\t%s\t%.1fs\n", e.Package, e.Elapsed)
			delete(p.pkgs, e.Package)
		}
		return
	}
	key := e.Package + " " + top
	t := p.running[key]
	switch e.Action {
	case "run":
		if sub == "" {
			p.running[key] = &test{started: time.Now()}
		}
		return
	case "output":
		if t != nil {
			t.add(e.Output)
		}
		return
	case "pass", "skip", "fail":
	default:
		return
	}
	if sub != "" || t == nil {
		return // subtests are reported by their top-level test
	}
	delete(p.running, key)
	name := short(e.Package) + "." + top
	switch e.Action {
	case "fail":
		p.failed = true
		for _, l := range t.out {
			fmt.Fprint(p.w, l)
		}
		fmt.Fprintf(p.w, "--- FAIL: %s (%.1fs) in %s\n", top, e.Elapsed, e.Package)
	case "skip":
		fmt.Fprintf(p.w, "--- SKIP: %s: %s\n", name, skipReason(t.out))
	case "pass":
		if t.shown {
			fmt.Fprintf(p.w, "--- PASS: %s (%.1fs)\n", name, e.Elapsed)
		}
	}
}

// skipReason is the message t.Skip logged: the output lines between the
// test's "=== RUN" and its "--- SKIP" line.
func skipReason(out []string) string {
	var msg []string
	for _, l := range out {
		s := strings.TrimSpace(l)
		if s == "" || strings.HasPrefix(s, "=== ") || strings.HasPrefix(s, "--- SKIP") {
			continue
		}
		msg = append(msg, s)
	}
	if len(msg) == 0 {
		return "no reason given"
	}
	return strings.Join(msg, " ")
}

// tick names the tests that have run longer than slow and were not named
// yet, and every minute those still running.
func (p *progress) tick(now time.Time, minute bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := make([]string, 0, len(p.running))
	for k := range p.running {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t := p.running[k]
		pkg, top, _ := strings.Cut(k, " ")
		d := now.Sub(t.started)
		switch {
		case !t.shown && d >= slow:
			t.shown = true
			fmt.Fprintf(p.w, "=== RUN   %s.%s\n", short(pkg), top)
		case t.shown && minute:
			fmt.Fprintf(p.w, "    ... %s.%s still running (%s)\n", short(pkg), top, d.Round(time.Second))
		}
	}
}

// missing lists the packages that started but never reported a result.
func (p *progress) missing() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var m []string
	for pkg := range p.started {
		if !p.ended[pkg] {
			m = append(m, pkg)
		}
	}
	sort.Strings(m)
	return m
}

func run(r io.Reader, w io.Writer, every time.Duration) int {
	p := newProgress(w)
	done := make(chan struct{})
	var wg sync.WaitGroup
	if every > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			n := 0
			for {
				select {
				case <-done:
					return
				case now := <-t.C:
					n++
					p.tick(now, n%int(time.Minute/every) == 0)
				}
			}
		}()
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		var e event
		if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &e) != nil {
			// Not an event (the go command's own messages): pass it on.
			p.mu.Lock()
			fmt.Fprintf(w, "%s\n", b)
			p.mu.Unlock()
			continue
		}
		p.handle(e)
	}
	close(done)
	wg.Wait()
	if err := sc.Err(); err != nil {
		fmt.Fprintf(w, "testprogress: reading the test stream after line %d: %v\n", line, err)
		return 1
	}
	if m := p.missing(); len(m) > 0 {
		fmt.Fprintf(w, "testprogress: no result for %s (the go command stopped early)\n", strings.Join(m, ", "))
		return 1
	}
	if p.failed {
		return 1
	}
	return 0
}

func main() {
	os.Exit(run(os.Stdin, os.Stdout, time.Second))
}
