package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// scrapeAlerts returns the ALERTS series on the default config's Prometheus
// endpoint (127.0.0.1:8889) as label strings.
func scrapeAlerts(t *testing.T) []string {
	resp, err := http.Get("http://127.0.0.1:8889/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "ALERTS{") {
			out = append(out, l)
		}
	}
	return out
}

// The embedded default with `vigil simulate --scenario error-dependency`
// raises ALERTS{alertname="CascadingFailure", alertstate="firing",
// origin_service=<the origin>} on 127.0.0.1:8889 within 60 s of the fault,
// and the healthy traffic before it raises nothing.
func TestDefaultConfigFlagsASimulatedCascade(t *testing.T) {
	requireDefaultPortsFree(t)
	a := startAgent(t, 13133)
	// A minute of healthy traffic first: a rate is judged against the
	// edge's own history, learned a minute behind the present.
	const faultAfter = 60 * time.Second
	cmd := exec.Command(vigilBin, "simulate", "--scenario", "error-dependency", "--seed", "3",
		"--fault-after", faultAfter.String(), "--fault-duration", "5m", "--duration", "10m")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	started := time.Now()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	br := bufio.NewReader(stdout)
	first, err := br.ReadString('\n')
	require.NoError(t, err)
	go func() { _, _ = io.Copy(io.Discard, br) }()
	m := regexp.MustCompile(`origin (\S+),`).FindStringSubmatch(first)
	require.NotNil(t, m, "no ground truth in %q", first)
	origin := m[1]
	t.Logf("ground truth: %s", strings.TrimSpace(first))

	// Healthy traffic: nothing at all may alert before the fault.
	for time.Since(started) < faultAfter-2*time.Second {
		require.Empty(t, scrapeAlerts(t), "an alert on healthy traffic")
		time.Sleep(2 * time.Second)
	}
	want := fmt.Sprintf(`alertname="CascadingFailure"`)
	deadline := started.Add(faultAfter + 60*time.Second)
	var firing string
	for time.Now().Before(deadline) && firing == "" {
		for _, l := range scrapeAlerts(t) {
			if strings.Contains(l, want) && strings.Contains(l, `alertstate="firing"`) {
				firing = l
			}
		}
		time.Sleep(time.Second)
	}
	require.NotEmpty(t, firing, "no firing CascadingFailure within 60 s of the fault; ALERTS now: %v", scrapeAlerts(t))
	t.Logf("%s after the fault: %s", time.Since(started.Add(faultAfter)).Round(time.Second), firing)
	require.Contains(t, firing, fmt.Sprintf(`origin_service="%s"`, origin))
	require.Regexp(t, `cascade_id="[0-9a-f]{12}"`, firing)
	require.Contains(t, firing, `severity="critical"`)

	// The README's "See a cascade flagged" shows the log line the agent
	// prints: it must still be the real one.
	example := readmeRedFlagLine(t)
	re := regexp.MustCompile(readmeExamplePattern(example, origin))
	require.Eventually(t, func() bool { return re.MatchString(a.log.String()) }, 10*time.Second, 200*time.Millisecond,
		"the README's example %s matches no line of the agent's log:\n%s", example, grepLines(a.log.String(), "red flag"))
}

// readmeRedFlagLine returns the example log line the README quotes after
// "the agent's log says".
func readmeRedFlagLine(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)the agent's log says\\s+`([^`]+)`").FindSubmatch(b)
	require.NotNil(t, m, "README.md no longer quotes the agent's red flag log line")
	return string(m[1])
}

// readmeExamplePattern turns the README's example into a pattern for the
// real line: \"...\" stands for an ID, "..." for any string value, {...}
// for an object, ", ...," for more fields; the example's origin stands for
// the simulator's.
func readmeExamplePattern(example, origin string) string {
	p := regexp.QuoteMeta(example)
	for _, r := range [][2]string{
		{`\\"\.\.\.\\"`, `\\"[0-9a-f]+\\"`},
		{`"\.\.\."`, `"(?:[^"\\]|\\.)*"`},
		{`\{\.\.\.\}`, `\{[^{}]*\}`},
		{`, \.\.\., `, `, .*, `},
		{"red flag ", `red flag\s+`},
		{"payments", regexp.QuoteMeta(origin)},
	} {
		p = strings.ReplaceAll(p, r[0], r[1])
	}
	return p
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// requireDefaultPortsFree fails when a port of the embedded default is taken.
func requireDefaultPortsFree(t *testing.T) {
	for _, p := range []int{4317, 4318, 8888, 8889, 13133, 19291} {
		c, err := (&http.Client{Timeout: 200 * time.Millisecond}).Get(fmt.Sprintf("http://127.0.0.1:%d/", p))
		if err == nil {
			c.Body.Close()
			t.Fatalf("port %d of the embedded default is busy (is another vigil running?)", p)
		}
	}
}
