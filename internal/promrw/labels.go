package promrw

import (
	"slices"
	"unicode/utf8"

	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

const (
	labelName       = "__name__"
	labelJob        = "job"
	labelInstance   = "instance"
	labelLe         = "le"
	labelQuantile   = "quantile"
	labelScopeName  = "otel_scope_name"
	labelScopeVer   = "otel_scope_version"
	metricTarget    = "target_info"
	metricScopeInfo = "otel_scope_info"
)

// scanLabels fills the identity fields of s from its labels and validates them.
func (b *batch) scanLabels(s *series) bool {
	prev, sorted := "", true
	for i, l := range s.labels {
		if l.Name == "" {
			b.invalid(s, "empty label name")
			return false
		}
		if i > 0 && l.Name == prev {
			b.invalid(s, "duplicate label %q", l.Name)
			return false
		}
		sorted = sorted && l.Name > prev
		prev = l.Name
		if !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value) {
			b.invalid(s, "label %q is not valid UTF-8", l.Name)
			return false
		}
		switch l.Name {
		case labelName:
			s.name = l.Value
		case labelJob:
			s.job = l.Value
		case labelInstance:
			s.instance = l.Value
		case labelLe:
			s.le, s.hasLe = l.Value, true
		case labelQuantile:
			s.quantile, s.hasQ = l.Value, true
		case labelScopeName:
			s.scope = l.Value
		case labelScopeVer:
			s.scopeV = l.Value
		}
	}
	if !sorted {
		// Senders should sort labels by name, but not all do; a duplicate
		// is then not next to its twin.
		if d, ok := duplicateName(s.labels); ok {
			b.invalid(s, "duplicate label %q", d)
			return false
		}
	}
	if s.name == "" {
		b.invalid(s, "no metric name (__name__ label)")
		return false
	}
	return true
}

// duplicateName returns a label name that occurs twice in ls.
func duplicateName(ls []prompb.Label) (string, bool) {
	names := make([]string, len(ls))
	for i := range ls {
		names[i] = ls[i].Name
	}
	slices.Sort(names)
	for i := 1; i < len(names); i++ {
		if names[i] == names[i-1] {
			return names[i], true
		}
	}
	return "", false
}

// hashLabels hashes the labels that identify a point within its family:
// all but __name__, le and quantile.
func (b *batch) hashLabels(fam string, ls []prompb.Label) uint64 {
	d := b.dig
	d.Reset()
	_, _ = d.WriteString(fam)
	for _, l := range ls {
		switch l.Name {
		case labelName, labelLe, labelQuantile:
			continue
		}
		_, _ = d.WriteString("\xff")
		_, _ = d.WriteString(l.Name)
		_, _ = d.WriteString("\xfe")
		_, _ = d.WriteString(l.Value)
	}
	return d.Sum64()
}

func sameIdentity(a, b []prompb.Label) bool {
	i, j := 0, 0
	for {
		for i < len(a) && (a[i].Name == labelName || a[i].Name == labelLe || a[i].Name == labelQuantile) {
			i++
		}
		for j < len(b) && (b[j].Name == labelName || b[j].Name == labelLe || b[j].Name == labelQuantile) {
			j++
		}
		if i == len(a) || j == len(b) {
			return i == len(a) && j == len(b)
		}
		if a[i].Name != b[j].Name || a[i].Value != b[j].Value {
			return false
		}
		i++
		j++
	}
}

// putAttrs copies the labels that are point attributes: all but the metric
// name, the resource (job, instance), the scope labels, and the label a
// histogram or summary family consumes (le, quantile).
func putAttrs(dst pcommon.Map, ls []prompb.Label, k okind) {
	dst.EnsureCapacity(len(ls))
	for _, l := range ls {
		switch l.Name {
		case labelName, labelJob, labelInstance, labelScopeName, labelScopeVer:
			continue
		case labelLe:
			if k == kHistogram {
				continue
			}
		case labelQuantile:
			if k == kSummary {
				continue
			}
		}
		dst.PutStr(l.Name, l.Value)
	}
}

func cloneLabels(ls []prompb.Label) []prompb.Label {
	out := make([]prompb.Label, len(ls))
	copy(out, ls)
	return out
}
