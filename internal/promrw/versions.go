package promrw

import (
	"strings"
	"unicode/utf8"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// The two versions share the two passes: pass one resolves labels and
// metadata and learns which families the request holds; pass two classifies
// each series and emits it. Version-specific code only adapts the wire types.

func (b *batch) growSeries(n int) {
	if cap(b.series) < n {
		b.series = make([]series, n)
	}
	b.series = b.series[:n]
}

func (b *batch) checkSamples(s *series, n int, ts func(int) int64) bool {
	for i := range n {
		if !validTs(ts(i)) {
			b.invalid(s, "timestamp %d ms is out of range", ts(i))
			return false
		}
	}
	return true
}

func (b *batch) fromV1(req *prompb.WriteRequest) {
	for i := range req.Metadata {
		m := &req.Metadata[i]
		if m.MetricFamilyName == "" || !utf8.ValidString(m.MetricFamilyName) || !utf8.ValidString(m.Help) || !utf8.ValidString(m.Unit) {
			continue
		}
		b.t.meta.put(m.MetricFamilyName, familyMeta{typ: typeFromV1(m.Type), help: m.Help, unit: m.Unit})
	}
	b.stats.Metadata = len(req.Metadata)
	b.stats.Series = len(req.Timeseries)
	b.growSeries(len(req.Timeseries))
	encoded, hists := 0, 0

	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		b.stats.Samples += len(ts.Samples)
		b.stats.Histograms += len(ts.Histograms)
		b.stats.Exemplars += len(ts.Exemplars)
		s := &b.series[i]
		*s = series{labels: ts.Labels, idx: i}
		if !b.scanLabels(s) {
			continue
		}
		if len(ts.Samples) > 0 && len(ts.Histograms) > 0 {
			b.invalid(s, "both float samples and native histograms")
			continue
		}
		if !b.checkSamples(s, len(ts.Samples), func(j int) int64 { return ts.Samples[j].Timestamp }) ||
			!b.checkSamples(s, len(ts.Histograms), func(j int) int64 { return ts.Histograms[j].Timestamp }) {
			continue
		}
		for j := range ts.Histograms {
			h := &ts.Histograms[j]
			encoded += len(h.PositiveDeltas) + len(h.NegativeDeltas) + len(h.PositiveCounts) + len(h.NegativeCounts)
		}
		hists += len(ts.Histograms)
		s.md = b.lookupV1(s.name)
		b.noteFamily(s)
		if base, ok := strings.CutSuffix(s.name, "_created"); ok && base != "" {
			b.noteCreated(s, base, b.v1Samples(ts.Samples))
		}
	}
	b.nativeBudget = nativeBudget(encoded, hists)

	for i := range req.Timeseries {
		s := &b.series[i]
		if s.invalid {
			continue
		}
		ts := &req.Timeseries[i]
		b.classify(s, len(ts.Histograms) > 0)
		exs := b.v1Exemplars(s, ts.Exemplars)
		if s.role == roleNative {
			b.emitNative(s, b.v1Natives(ts.Histograms), exs)
			continue
		}
		b.emit(s, b.v1Samples(ts.Samples), exs)
	}
	b.finishClassic()
	b.finishResources()
	if b.pruneEmpty {
		b.prune()
	}
}

func (b *batch) v1Samples(in []prompb.Sample) []sample {
	out := b.samples[:0]
	for _, sm := range in {
		out = append(out, sample{v: sm.Value, t: sm.Timestamp})
	}
	b.samples = out
	return out
}

func (b *batch) v1Exemplars(s *series, in []prompb.Exemplar) []exemplar {
	out := b.exs[:0]
	for _, e := range in {
		if !validLabels(e.Labels) {
			b.stats.Dropped++
			continue
		}
		out = append(out, exemplar{labels: e.Labels, v: e.Value, t: e.Timestamp})
	}
	b.exs = out
	_ = s
	return out
}

func validLabels(ls []prompb.Label) bool {
	for _, l := range ls {
		if l.Name == "" || !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value) {
			return false
		}
	}
	return true
}

func (b *batch) fromV2(req *writev2.Request) {
	syms := req.Symbols
	b.stats.Series = len(req.Timeseries)
	b.growSeries(len(req.Timeseries))
	total := 0
	for i := range req.Timeseries {
		total += len(req.Timeseries[i].LabelsRefs) / 2
	}
	if cap(b.arena) < total {
		b.arena = make([]prompb.Label, 0, total)
	}
	encoded, hists := 0, 0

	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		b.stats.Samples += len(ts.Samples)
		b.stats.Histograms += len(ts.Histograms)
		b.stats.Exemplars += len(ts.Exemplars)
		s := &b.series[i]
		*s = series{idx: i}
		ls, ok := b.resolve(syms, ts.LabelsRefs)
		s.labels = ls
		if !ok {
			b.invalid(s, "labels_refs %v out of range of %d symbols or odd in length", clipRefs(ts.LabelsRefs), len(syms))
			continue
		}
		if !b.scanLabels(s) {
			continue
		}
		if len(ts.Samples) > 0 && len(ts.Histograms) > 0 {
			b.invalid(s, "both float samples and native histograms")
			continue
		}
		if !b.checkSamples(s, len(ts.Samples), func(j int) int64 { return ts.Samples[j].Timestamp }) ||
			!b.checkSamples(s, len(ts.Histograms), func(j int) int64 { return ts.Histograms[j].Timestamp }) {
			continue
		}
		for j := range ts.Histograms {
			h := &ts.Histograms[j]
			encoded += len(h.PositiveDeltas) + len(h.NegativeDeltas) + len(h.PositiveCounts) + len(h.NegativeCounts)
		}
		hists += len(ts.Histograms)
		md := ts.Metadata
		help, ok1 := symbol(syms, md.HelpRef)
		unit, ok2 := symbol(syms, md.UnitRef)
		if !ok1 || !ok2 {
			b.invalid(s, "metadata help_ref %d or unit_ref %d out of range of %d symbols", md.HelpRef, md.UnitRef, len(syms))
			continue
		}
		if !utf8.ValidString(help) || !utf8.ValidString(unit) {
			b.invalid(s, "metadata help or unit is not valid UTF-8")
			continue
		}
		s.md = familyMeta{typ: typeFromV2(md.Type), help: help, unit: unit}
		b.noteFamily(s)
		if base, ok := strings.CutSuffix(s.name, "_created"); ok && base != "" {
			b.noteCreated(s, base, b.v2Samples(ts.Samples))
		}
	}
	b.nativeBudget = nativeBudget(encoded, hists)

	for i := range req.Timeseries {
		s := &b.series[i]
		if s.invalid {
			continue
		}
		ts := &req.Timeseries[i]
		b.classify(s, len(ts.Histograms) > 0)
		exs := b.v2Exemplars(syms, ts.Exemplars)
		if s.role == roleNative {
			b.emitNative(s, b.v2Natives(ts.Histograms), exs)
			continue
		}
		b.emit(s, b.v2Samples(ts.Samples), exs)
	}
	b.finishClassic()
	b.finishResources()
	if b.pruneEmpty {
		b.prune()
	}
}

func symbol(syms []string, ref uint32) (string, bool) {
	if int(ref) >= len(syms) {
		if ref == 0 {
			return "", true // an empty symbol table: no help, no unit
		}
		return "", false
	}
	return syms[ref], true
}

// resolve appends the labels of refs to the arena and returns them.
func (b *batch) resolve(syms []string, refs []uint32) ([]prompb.Label, bool) {
	if len(refs)%2 != 0 {
		return nil, false
	}
	start := len(b.arena)
	for j := 0; j < len(refs); j += 2 {
		n, v := refs[j], refs[j+1]
		if int(n) >= len(syms) || int(v) >= len(syms) {
			b.arena = b.arena[:start]
			return nil, false
		}
		b.arena = append(b.arena, prompb.Label{Name: syms[n], Value: syms[v]})
	}
	return b.arena[start:len(b.arena):len(b.arena)], true
}

func clipRefs(r []uint32) []uint32 {
	if len(r) > 8 {
		return r[:8]
	}
	return r
}

func (b *batch) v2Samples(in []writev2.Sample) []sample {
	out := b.samples[:0]
	for _, sm := range in {
		out = append(out, sample{v: sm.Value, t: sm.Timestamp, start: max(sm.StartTimestamp, 0)})
	}
	b.samples = out
	return out
}

func (b *batch) v2Exemplars(syms []string, in []writev2.Exemplar) []exemplar {
	out := b.exs[:0]
	for _, e := range in {
		ls, ok := b.resolve(syms, e.LabelsRefs)
		if !ok || !validLabels(ls) {
			b.stats.Dropped++
			continue
		}
		out = append(out, exemplar{labels: ls, v: e.Value, t: e.Timestamp})
	}
	b.exs = out
	return out
}
