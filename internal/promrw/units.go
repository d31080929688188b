package promrw

import "strings"

// promUnits maps Prometheus unit words to UCUM abbreviations, as the
// compatibility spec asks ("seconds" -> "s", "ratio" -> "1"). Words not listed
// pass through unchanged.
var promUnits = map[string]string{
	"seconds": "s", "milliseconds": "ms", "microseconds": "us", "nanoseconds": "ns",
	"minutes": "min", "hours": "h", "days": "d",
	"bytes": "By", "kilobytes": "kBy", "megabytes": "MBy", "gigabytes": "GBy", "terabytes": "TBy",
	"kibibytes": "KiBy", "mebibytes": "MiBy", "gibibytes": "GiBy", "tebibytes": "TiBy",
	"meters": "m", "volts": "V", "amperes": "A", "joules": "J", "watts": "W", "grams": "g",
	"celsius": "Cel", "hertz": "Hz", "percent": "%", "ratio": "1",
}

// otelUnit translates a Prometheus UNIT to the OpenTelemetry convention.
func otelUnit(u string) string {
	if u == "" {
		return ""
	}
	if v, ok := promUnits[u]; ok {
		return v
	}
	if num, den, ok := strings.Cut(u, "_per_"); ok && num != "" && den != "" {
		return otelUnit(num) + "/" + otelUnit(den)
	}
	return u
}
