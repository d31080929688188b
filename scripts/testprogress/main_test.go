package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func stream(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

const pkg = "github.com/vigilhq/vigil/e2e"

func TestReportsSkipsFailuresAndResults(t *testing.T) {
	in := stream(
		`{"Action":"start","Package":"`+pkg+`"}`,
		`{"Action":"run","Package":"`+pkg+`","Test":"TestOverload"}`,
		`{"Action":"output","Package":"`+pkg+`","Test":"TestOverload","Output":"=== RUN   TestOverload\n"}`,
		`{"Action":"output","Package":"`+pkg+`","Test":"TestOverload","Output":"    overload_test.go:10: no memory cgroup here\n"}`,
		`{"Action":"output","Package":"`+pkg+`","Test":"TestOverload","Output":"--- SKIP: TestOverload (0.00s)\n"}`,
		`{"Action":"skip","Package":"`+pkg+`","Test":"TestOverload","Elapsed":0}`,
		`{"Action":"run","Package":"`+pkg+`","Test":"TestAlerts"}`,
		`{"Action":"run","Package":"`+pkg+`","Test":"TestAlerts/slack"}`,
		`{"Action":"output","Package":"`+pkg+`","Test":"TestAlerts/slack","Output":"    alerts_test.go:42: no alert after 30s\n"}`,
		`{"Action":"fail","Package":"`+pkg+`","Test":"TestAlerts/slack","Elapsed":30}`,
		`{"Action":"fail","Package":"`+pkg+`","Test":"TestAlerts","Elapsed":30}`,
		`{"Action":"run","Package":"`+pkg+`","Test":"TestQuick"}`,
		`{"Action":"pass","Package":"`+pkg+`","Test":"TestQuick","Elapsed":0.1}`,
		`{"Action":"output","Package":"`+pkg+`","Output":"FAIL\n"}`,
		`{"Action":"output","Package":"`+pkg+`","Output":"FAIL\t`+pkg+`\t31.000s\n"}`,
		`{"Action":"fail","Package":"`+pkg+`","Elapsed":31}`,
	)
	var out bytes.Buffer
	code := run(strings.NewReader(in), &out, 0)
	got := out.String()
	if code != 1 {
		t.Errorf("exit %d, want 1 for a failed test", code)
	}
	for _, want := range []string{
		"--- SKIP: e2e.TestOverload: overload_test.go:10: no memory cgroup here",
		"alerts_test.go:42: no alert after 30s",
		"--- FAIL: TestAlerts (30.0s) in " + pkg,
		"FAIL\t" + pkg,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "FAIL\t"+pkg); n != 1 {
		t.Errorf("the package's result is printed %d times:\n%s", n, got)
	}
	if strings.Contains(got, "TestQuick") {
		t.Errorf("a quick passing test is named:\n%s", got)
	}
}

func TestNamesSlowTestsWhileTheyRun(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out)
	p.handle(event{Action: "run", Package: pkg, Test: "TestSoak"})
	start := time.Now()
	p.tick(start.Add(time.Second), false)
	if out.Len() != 0 {
		t.Fatalf("named after a second: %q", out.String())
	}
	p.tick(start.Add(slow+time.Second), false)
	p.tick(start.Add(time.Minute+slow), true)
	p.handle(event{Action: "pass", Package: pkg, Test: "TestSoak", Elapsed: 65})
	got := out.String()
	for _, want := range []string{"=== RUN   e2e.TestSoak", "e2e.TestSoak still running (1m5s)", "--- PASS: e2e.TestSoak (65.0s)"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestStreamEndingEarlyFails(t *testing.T) {
	in := stream(
		`{"Action":"start","Package":"`+pkg+`"}`,
		`{"Action":"run","Package":"`+pkg+`","Test":"TestX"}`,
	)
	var out bytes.Buffer
	if code := run(strings.NewReader(in), &out, 0); code != 1 {
		t.Errorf("exit %d with no package result, want 1", code)
	}
	if !strings.Contains(out.String(), "no result for "+pkg) {
		t.Errorf("output: %s", out.String())
	}
	out.Reset()
	ok := stream(`{"Action":"start","Package":"`+pkg+`"}`, `{"Action":"pass","Package":"`+pkg+`","Elapsed":1}`)
	if code := run(strings.NewReader(ok), &out, 0); code != 0 {
		t.Errorf("exit %d for a passing package: %s", code, out.String())
	}
}
