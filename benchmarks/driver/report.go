package driver

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// Metrics printed on RESULT lines, in order.
var resultMetrics = []string{"items_per_s", "cpu_s_per_million", "peak_rss_mib", "peak_anon_mib"}

func metricOf(s Sample, name string) float64 {
	switch name {
	case "items_per_s":
		return s.ItemsPerS
	case "cpu_s_per_million":
		return s.CPUPerM
	case "peak_rss_mib":
		return s.PeakRSSMiB
	case "median_rss_mib":
		return s.MedianRSSMiB
	case "peak_anon_mib":
		return s.PeakAnonMiB
	case "refused":
		return s.Refused
	case "dropped":
		return s.Dropped
	case "evicted":
		return s.Evicted
	case "other_cpu_pct":
		return s.OtherCPUPct
	case "sink_items_per_s":
		return s.SinkPerS
	case "load_cpu_pct":
		return s.LoadCPUPct
	case "harness_cpu_pct":
		return s.HarnessCPUPct
	case "mib_per_cpu_s":
		return s.MiBPerCPUS
	}
	return math.NaN()
}

// spread is the median, minimum and maximum of some values.
type spread struct {
	Med, Min, Max float64
	N             int
}

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{Med: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return spread{Med: median(s), Min: s[0], Max: s[len(s)-1], N: len(s)}
}

func (sr *SideResult) values(metric string) []float64 {
	var v []float64
	for _, s := range sr.Samples {
		v = append(v, metricOf(s, metric))
	}
	return v
}

// ratios pairs the runs of two sides by repetition and divides them.
func ratios(a, b *SideResult, metric string) []float64 {
	byRep := map[int]float64{}
	for _, s := range b.Samples {
		byRep[s.Rep] = metricOf(s, metric)
	}
	var r []float64
	for _, s := range a.Samples {
		if d, ok := byRep[s.Rep]; ok && d != 0 {
			r = append(r, metricOf(s, metric)/d)
		}
	}
	return r
}

// format prints a figure with precision suited to its size.
func format(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case math.Abs(v) >= 1000:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// comparisons are the (label, side) pairs a workload reports against Vigil:
// the peer under the workload's name, other peers as <workload>-<side>.
func comparisons(r Result) [][2]string {
	var out [][2]string
	for _, s := range r.Sides {
		switch s.Side {
		case Vigil:
		case Peer:
			out = append(out, [2]string{r.Workload, Peer})
		default:
			out = append(out, [2]string{r.Workload + "-" + s.Side, s.Side})
		}
	}
	if len(out) == 0 {
		out = append(out, [2]string{r.Workload, Peer})
	}
	return out
}

func medianOf(sr *SideResult, metric string) float64 {
	if sr == nil || sr.NA != "" || len(sr.Samples) == 0 {
		return math.NaN()
	}
	return spreadOf(sr.values(metric)).Med
}

// ResultLines are the machine-readable lines of a workload:
// "RESULT <workload> <metric> vigil=<median> peer=<median> ratio=<vigil/peer>",
// n/a for a side that could not run.
func ResultLines(r Result) []string {
	var out []string
	v := r.side(Vigil)
	for _, c := range comparisons(r) {
		p := r.side(c[1])
		for _, m := range resultMetrics {
			vm, pm := medianOf(v, m), medianOf(p, m)
			ratio := "n/a"
			if !math.IsNaN(vm) && !math.IsNaN(pm) && pm != 0 {
				ratio = fmt.Sprintf("%.3f", vm/pm)
			}
			out = append(out, fmt.Sprintf("RESULT %s %s vigil=%s peer=%s ratio=%s", c[0], m, format(vm), format(pm), ratio))
		}
	}
	return out
}

// Meta describes where and how a set of results was measured.
type Meta struct {
	Date       string        `json:"date"`
	Commit     string        `json:"commit"`
	Machine    string        `json:"machine"`
	Go         string        `json:"go"`
	Reps       int           `json:"reps"`
	Pinned     string        `json:"pinned"`
	Priority   string        `json:"priority"`
	LoadBefore string        `json:"load_before"`
	LoadAfter  string        `json:"load_after"`
	GenCheck   []string      `json:"gencheck"`
	Duration   time.Duration `json:"duration_ns"`
}

var tableMetrics = []struct{ key, label string }{
	{"items_per_s", "items/s accepted"},
	{"cpu_s_per_million", "CPU-s per million items"},
	{"peak_rss_mib", "peak RSS (MiB)"},
	{"median_rss_mib", "median RSS (MiB)"},
	{"peak_anon_mib", "peak anonymous RSS (MiB)"},
	{"sink_items_per_s", "items/s at the sink"},
	{"refused", "refused in window"},
	{"dropped", "dropped in window"},
	{"evicted", "evicted in window"},
	{"mib_per_cpu_s", "input MiB per CPU-s"},
	{"other_cpu_pct", "other processes on the agent's CPU (%)"},
	{"load_cpu_pct", "load CPU busy, generator + sink + others (%)"},
	{"harness_cpu_pct", "harness (generator + sink) CPU (%)"},
}

func cell(sr *SideResult, metric string) string {
	if sr == nil {
		return "n/a"
	}
	if sr.NA != "" {
		return "n/a"
	}
	s := spreadOf(sr.values(metric))
	if s.Min == s.Max {
		return format(s.Med)
	}
	return fmt.Sprintf("%s [%s–%s]", format(s.Med), format(s.Min), format(s.Max))
}

// WriteMarkdown writes the results document: how and where it was measured,
// and one table per workload with every figure as median [min–max].
func WriteMarkdown(w io.Writer, m Meta, results []Result) error {
	var b strings.Builder
	b.WriteString("# Benchmark results\n\n")
	b.WriteString("Written by `make bench` (benchmarks/cmd/bench); do not edit by hand. How the figures are\n")
	b.WriteString("measured: benchmarks/README.md.\n\n")
	fmt.Fprintf(&b, "- date: %s; total time %s\n", m.Date, m.Duration.Round(time.Second))
	fmt.Fprintf(&b, "- commit: %s\n", m.Commit)
	fmt.Fprintf(&b, "- machine: %s\n", m.Machine)
	fmt.Fprintf(&b, "- go: %s\n", m.Go)
	fmt.Fprintf(&b, "- method: sides run alternately (A B A B), %d repetitions each, %s; GOMAXPROCS=1 for the agent; priority: %s. "+
		"Each run: start the agent, wait for its health check, start the load, warm up, then measure a window. "+
		"items/s from the agent's own otelcol_receiver_accepted_* (metrics workloads: samples delivered to the remote-write sink, the unit every side shares); "+
		"CPU from /proc/<pid>/stat utime+stime over the window; peak RSS is VmHWM, median RSS of VmRSS sampled every 500 ms, peak anonymous RSS the highest RssAnon of those samples (without the binary's file-backed pages). "+
		"Figures are median [min–max] over the repetitions; ratios are Vigil/peer per paired repetition.\n", m.Reps, m.Pinned, m.Priority)
	fmt.Fprintf(&b, "- machine load (1/5/15 min load average): before %s, after %s\n", m.LoadBefore, m.LoadAfter)
	for _, g := range m.GenCheck {
		fmt.Fprintf(&b, "- generator check: %s\n", g)
	}
	b.WriteString("\n## Summary (medians)\n\n| workload | metric | vigil | peer | vigil/peer |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range results {
		for _, line := range ResultLines(r) {
			f := strings.Fields(line)
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", f[1], f[2], strings.TrimPrefix(f[3], "vigil="), strings.TrimPrefix(f[4], "peer="), strings.TrimPrefix(f[5], "ratio="))
		}
	}
	if line := t3Cost(results); line != "" {
		b.WriteString("\n" + line + "\n")
	}
	for _, r := range results {
		fmt.Fprintf(&b, "\n## %s\n\n%s. Items are %s", r.Workload, r.Doc, r.Unit)
		if r.BytesPerItem > 0 {
			fmt.Fprintf(&b, " (%.0f bytes each on the wire)", r.BytesPerItem)
		}
		fmt.Fprintf(&b, "; measured %s to %s.\n\n", r.Start.Format("15:04:05"), r.End.Format("15:04:05"))
		header := "| figure |"
		sep := "| --- |"
		for _, s := range r.Sides {
			header += " " + s.Side + " |"
			sep += " --- |"
		}
		v := r.side(Vigil)
		var others []*SideResult
		for i := range r.Sides {
			if r.Sides[i].Side != Vigil {
				others = append(others, &r.Sides[i])
				header += " vigil/" + r.Sides[i].Side + " |"
				sep += " --- |"
			}
		}
		b.WriteString(header + "\n" + sep + "\n")
		for _, tm := range tableMetrics {
			if tm.key == "mib_per_cpu_s" && r.Unit != "lines" {
				continue
			}
			row := "| " + tm.label + " |"
			for i := range r.Sides {
				row += " " + cell(&r.Sides[i], tm.key) + " |"
			}
			for _, o := range others {
				rs := []float64(nil)
				if v != nil && v.NA == "" && o.NA == "" {
					rs = ratios(v, o, tm.key)
				}
				if len(rs) == 0 {
					row += " n/a |"
					continue
				}
				s := spreadOf(rs)
				row += fmt.Sprintf(" %.3f [%.3f–%.3f] |", s.Med, s.Min, s.Max)
			}
			b.WriteString(row + "\n")
		}
		for _, sd := range r.Sides {
			if sd.NA != "" {
				fmt.Fprintf(&b, "\n%s: n/a, %s\n", sd.Side, strings.ReplaceAll(sd.NA, "|", "/"))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// t3Cost compares Vigil's T3 with its T2 (the red-flag connector's cost) when
// both ran.
func t3Cost(results []Result) string {
	var t2, t3 *SideResult
	for i := range results {
		switch results[i].Workload {
		case "T2":
			t2 = results[i].side(Vigil)
		case "T3":
			t3 = results[i].side(Vigil)
		}
	}
	c2, c3 := medianOf(t2, "cpu_s_per_million"), medianOf(t3, "cpu_s_per_million")
	m2, m3 := medianOf(t2, "peak_rss_mib"), medianOf(t3, "peak_rss_mib")
	if math.IsNaN(c2) || math.IsNaN(c3) {
		return ""
	}
	return fmt.Sprintf("T3 against T2, Vigil (the red-flag connector's cost): CPU-s per million spans %s vs %s (x%.3f), peak RSS %s vs %s MiB (x%.3f).",
		format(c3), format(c2), c3/c2, format(m3), format(m2), m3/m2)
}
