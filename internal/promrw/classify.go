package promrw

import (
	"strings"
)

// okind is the kind of OTLP metric a series lands in.
type okind uint8

const (
	kGauge okind = iota
	kCounter
	kUpDown // non-monotonic sum: info, stateset
	kHistogram
	kSummary
	kExpHistogram
)

// role is what a series contributes to its metric.
type role uint8

const (
	roleValue role = iota
	roleBucket
	roleQuantile
	roleSum
	roleCount
	roleCreated
	roleNative
	roleTargetInfo
	roleScopeInfo
	roleDrop
)

// classify decides the family, metric kind and role of a series from its
// metadata, its labels and (without metadata) its suffix and the families
// seen elsewhere in the request.
func (b *batch) classify(s *series, native bool) {
	s.fam, s.kind, s.role = s.name, kGauge, roleValue
	switch s.name {
	case metricTarget:
		s.role = roleTargetInfo
		return
	case metricScopeInfo:
		s.role = roleScopeInfo
		return
	}
	if native {
		if s.md.typ == typeGaugeHistogram {
			s.role = roleDrop
			return
		}
		s.kind, s.role = kExpHistogram, roleNative
		return
	}
	name := s.name
	switch s.md.typ {
	case typeCounter:
		if base, ok := strings.CutSuffix(name, "_created"); ok && base != "" {
			s.fam, s.role = base, roleCreated
			return
		}
		s.kind = kCounter
	case typeGauge:
	case typeInfo, typeStateset:
		s.kind = kUpDown
	case typeGaugeHistogram:
		s.role = roleDrop
	case typeHistogram:
		b.classicRole(s, kHistogram)
	case typeSummary:
		b.classicRole(s, kSummary)
	case typeNone:
		switch {
		case s.hasLe && strings.HasSuffix(name, "_bucket"):
			b.classicRole(s, kHistogram)
		case s.hasQ:
			b.classicRole(s, kSummary)
		case hasAnySuffix(name, "_sum", "_count", "_created"):
			base := name[:strings.LastIndexByte(name, '_')]
			if k, ok := b.famKind[base]; ok {
				if k == kCounter {
					if strings.HasSuffix(name, "_created") {
						s.fam, s.role = base, roleCreated
					}
					return
				}
				b.classicRole(s, k)
			}
		case strings.HasSuffix(name, "_total"):
			s.kind = kCounter
		}
	}
}

func hasAnySuffix(s string, sufs ...string) bool {
	for _, x := range sufs {
		if strings.HasSuffix(s, x) && len(s) > len(x) {
			return true
		}
	}
	return false
}

// classicRole places a series of a classic histogram or summary family.
func (b *batch) classicRole(s *series, k okind) {
	name := s.name
	s.kind = k
	switch {
	case k == kHistogram && s.hasLe && strings.HasSuffix(name, "_bucket"):
		s.fam, s.role = name[:len(name)-len("_bucket")], roleBucket
	case k == kSummary && s.hasQ && !hasAnySuffix(name, "_sum", "_count", "_created"):
		s.role = roleQuantile
	case strings.HasSuffix(name, "_sum") && len(name) > 4:
		s.fam, s.role = name[:len(name)-4], roleSum
	case strings.HasSuffix(name, "_count") && len(name) > 6:
		s.fam, s.role = name[:len(name)-6], roleCount
	case strings.HasSuffix(name, "_created") && len(name) > 8:
		s.fam, s.role = name[:len(name)-8], roleCreated
	default:
		// Typed as a histogram or summary but not shaped like one: keep
		// the samples as a gauge rather than lose them.
		s.kind, s.role = kGauge, roleValue
	}
}

// noteFamily records, in pass one, families whose shape shows in the
// request, for series that come without metadata.
func (b *batch) noteFamily(s *series) {
	switch {
	case s.hasLe && strings.HasSuffix(s.name, "_bucket"):
		b.famKind[s.name[:len(s.name)-len("_bucket")]] = kHistogram
	case s.hasQ:
		b.famKind[s.name] = kSummary
	case s.md.typ == typeCounter || (s.md.typ == typeNone && strings.HasSuffix(s.name, "_total")):
		b.famKind[strings.TrimSuffix(s.name, "_total")] = kCounter
	}
	if s.md.typ == typeHistogram || s.md.typ == typeSummary {
		for _, suf := range [...]string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(s.name, suf); ok && base != "" {
				if s.md.typ == typeHistogram {
					b.famKind[base] = kHistogram
				} else {
					b.famKind[base] = kSummary
				}
			}
		}
	}
}
