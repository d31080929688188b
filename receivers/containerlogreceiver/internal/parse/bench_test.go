package parse

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	gojson "github.com/goccy/go-json"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fastjson"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// appLine is a 1 KB structured log line with 11 top-level keys, as a Go
// service using zap writes it.
var appLine = `{"level":"info","ts":1705314600.123456,"caller":"api/handler.go:142","msg":"request completed",` +
	`"http":{"method":"POST","path":"/api/v1/orders/8c1f2a/items","status":201,"bytes":1834,"user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"},` +
	`"duration_ms":12.734,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",` +
	`"user":{"id":184467,"tenant":"acme-corp","roles":["admin","billing","support"]},` +
	`"stacktrace":"goroutine 1 [running]:\nmain.handler(0xc000123456)\n\t/src/api/handler.go:142 +0x1d\nnet/http.HandlerFunc.ServeHTTP(0x0, 0x0)\n\t/usr/local/go/src/net/http/server.go:2136 +0x29",` +
	`"note":"` + strings.Repeat("lorem ipsum dolor sit amet ", 8) + `"}`

var (
	criLine    = []byte("2024-01-15T10:30:00.123456789Z stdout F " + appLine)
	dockerLine = func() []byte {
		b, _ := json.Marshal(map[string]string{"log": appLine + "\n", "stream": "stdout", "time": "2024-01-15T10:30:00.123456789Z"})
		return b
	}()
	dockerTextLine = func() []byte {
		b, _ := json.Marshal(map[string]string{"log": "10.0.0.1 - - [15/Jan/2024:10:30:00 +0000] GET /api/v1/orders?page=2 HTTP/1.1 200 1834 " + strings.Repeat("Mozilla/5.0 (X11; Linux x86_64) ", 28) + "\n", "stream": "stdout", "time": "2024-01-15T10:30:00.123456789Z"})
		return b
	}()
)

func BenchmarkCRI(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(criLine)))
	for b.Loop() {
		if _, err := CRI(criLine); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDocker(b *testing.B) {
	for name, line := range map[string][]byte{"json-content": dockerLine, "text-content": dockerTextLine} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			var scratch []byte
			for b.Loop() {
				var err error
				if _, scratch, err = Docker(line, scratch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseTime(b *testing.B) {
	ts := []byte("2024-01-15T10:30:00.123456789+01:00")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTime(ts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePodPath(b *testing.B) {
	path := "/var/log/pods/default_web-7d4b9c8f6-x2x7k_4b1c5a0e-2f3d-4e5a-9b8c-7d6e5f4a3b2c/nginx/0.log"
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ParsePodPath(path); !ok {
			b.Fatal(path)
		}
	}
}

// clearRecord empties rec for the next line, keeping the attribute slice's
// capacity, as a receiver reusing records would.
func clearRecord(rec plog.LogRecord) {
	rec.Attributes().RemoveIf(func(string, pcommon.Value) bool { return true })
	rec.Body().SetStr("")
	rec.SetSeverityText("")
	rec.SetSeverityNumber(0)
	rec.SetTimestamp(0)
}

// BenchmarkJSONParser decodes appLine (1 KB, 11 top-level keys, 24 values)
// into a log record, three ways:
//   - vigil: JSONParser, into a reused record or a new one per line;
//   - fastjson: fastjson.Parser, walking its tree into the same attributes,
//     keys mapped likewise; without a strict pass (lenient, as fastjson is),
//     and with fastjson.ValidateBytes first (strict, but with no depth cap);
//   - encoding-json+FromRaw: encoding/json into map[string]any, then
//     pcommon.Map.FromRaw;
//   - goccy+FromRaw: the same with github.com/goccy/go-json, which is what
//     stanza's json_parser (pkg/stanza/operator/parser/jsonparser) decodes
//     with before its adapter PutEmpty's each value into the record (a lower
//     bound for stanza: its entry.Entry, copies and operators come on top).
func BenchmarkJSONParser(b *testing.B) {
	body := []byte(appLine)
	b.Run("vigil/reused-record", func(b *testing.B) {
		var p JSONParser
		rec := plog.NewLogRecord()
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			clearRecord(rec)
			if err := p.Parse(body, typicalKeys, rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("vigil/new-record", func(b *testing.B) {
		var p JSONParser
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			rec := plog.NewLogRecord()
			if err := p.Parse(body, typicalKeys, rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("vigil/not-json", func(b *testing.B) {
		var p JSONParser
		rec := plog.NewLogRecord()
		text := []byte("10.0.0.1 - - [15/Jan/2024:10:30:00 +0000] GET /healthz 200")
		b.ReportAllocs()
		for b.Loop() {
			if err := p.Parse(text, typicalKeys, rec); err != ErrNotObject { //nolint:errorlint // the sentinel itself
				b.Fatal(err)
			}
		}
	})
	b.Run("fastjson/reused-record", func(b *testing.B) {
		var p fastjson.Parser
		rec := plog.NewLogRecord()
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			clearRecord(rec)
			if err := fastjsonParse(&p, body, rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fastjson+Validate/reused-record", func(b *testing.B) {
		var p fastjson.Parser
		rec := plog.NewLogRecord()
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			clearRecord(rec)
			if err := fastjson.ValidateBytes(body); err != nil {
				b.Fatal(err)
			}
			if err := fastjsonParse(&p, body, rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	for name, unmarshal := range map[string]func([]byte, any) error{"encoding-json": json.Unmarshal, "goccy": gojson.Unmarshal} {
		b.Run(name+"+FromRaw/reused-record", func(b *testing.B) {
			rec := plog.NewLogRecord()
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				clearRecord(rec)
				if err := stanzaLikeParse(unmarshal, body, rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fastjsonParse is JSONParser.Parse done with fastjson, for the benchmark.
func fastjsonParse(p *fastjson.Parser, body []byte, rec plog.LogRecord) error {
	v, err := p.ParseBytes(body)
	if err != nil {
		return err
	}
	o, err := v.Object()
	if err != nil {
		return err
	}
	if sv := o.Get("level"); sv != nil {
		text := sv.GetStringBytes()
		rec.SetSeverityText(string(text))
		rec.SetSeverityNumber(severityNumber(text))
	}
	if mv := o.Get("msg"); mv != nil {
		rec.Body().SetStr(string(mv.GetStringBytes()))
	}
	if tv := o.Get("ts"); tv != nil {
		rec.SetTimestamp(pcommon.Timestamp(tv.GetFloat64() * 1e9))
	}
	attrs := rec.Attributes()
	attrs.EnsureCapacity(o.Len())
	o.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "level", "msg", "ts":
			return
		}
		fastjsonValue(attrs.PutEmpty(string(k)), v)
	})
	return nil
}

func fastjsonValue(dst pcommon.Value, v *fastjson.Value) {
	switch v.Type() {
	case fastjson.TypeString:
		dst.SetStr(string(v.GetStringBytes()))
	case fastjson.TypeNumber:
		if n, err := v.Int64(); err == nil {
			dst.SetInt(n)
		} else {
			dst.SetDouble(v.GetFloat64())
		}
	case fastjson.TypeTrue:
		dst.SetBool(true)
	case fastjson.TypeFalse:
		dst.SetBool(false)
	case fastjson.TypeObject:
		m := dst.SetEmptyMap()
		v.GetObject().Visit(func(k []byte, v *fastjson.Value) { fastjsonValue(m.PutEmpty(string(k)), v) })
	case fastjson.TypeArray:
		s := dst.SetEmptySlice()
		for _, e := range v.GetArray() {
			fastjsonValue(s.AppendEmpty(), e)
		}
	}
}

// stanzaLikeParse is what stanza's json_parser and pdata conversion do:
// decode into map[string]any, take the mapped fields out, FromRaw the rest.
func stanzaLikeParse(unmarshal func([]byte, any) error, body []byte, rec plog.LogRecord) error {
	var m map[string]any
	if err := unmarshal(body, &m); err != nil {
		return err
	}
	if s, ok := m["level"].(string); ok {
		rec.SetSeverityText(s)
		rec.SetSeverityNumber(severityNumber([]byte(s)))
		delete(m, "level")
	}
	if s, ok := m["msg"].(string); ok {
		rec.Body().SetStr(s)
		delete(m, "msg")
	}
	if f, ok := m["ts"].(float64); ok {
		rec.SetTimestamp(pcommon.Timestamp(f * 1e9))
		delete(m, "ts")
	}
	return rec.Attributes().FromRaw(m)
}

func TestBenchmarkParsersAgree(t *testing.T) {
	body := []byte(appLine)
	var p JSONParser
	ours := plog.NewLogRecord()
	require.NoError(t, p.Parse(body, typicalKeys, ours))
	var fp fastjson.Parser
	fj := plog.NewLogRecord()
	require.NoError(t, fastjsonParse(&fp, body, fj))
	st := plog.NewLogRecord()
	require.NoError(t, stanzaLikeParse(json.Unmarshal, body, st))
	gj := plog.NewLogRecord()
	require.NoError(t, stanzaLikeParse(gojson.Unmarshal, body, gj))
	for _, other := range []plog.LogRecord{fj, st, gj} {
		require.True(t, equalLoose(recordOf(ours).attrs, recordOf(other).attrs))
		require.Equal(t, ours.Body().Str(), other.Body().Str())
		require.Equal(t, ours.SeverityNumber(), other.SeverityNumber())
	}
	require.Len(t, recordOf(ours).attrs, 11-3)
}

// BenchmarkJSONParserMaxValues is the worst case of the value cap: a body of
// DefaultJSONMaxValues top-level keys, each insert checking the keys before
// it for a duplicate (pcommon.Map.PutEmpty is a linear search).
func BenchmarkJSONParserMaxValues(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("{")
	for i := range DefaultJSONMaxValues {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `"key_%04d":%d`, i, i)
	}
	sb.WriteString("}")
	body := []byte(sb.String())
	var p JSONParser
	p.Parse(body, typicalKeys, plog.NewLogRecord()) //nolint:errcheck // warm the key cache
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := p.Parse(body, typicalKeys, plog.NewLogRecord()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJoiner(b *testing.B) {
	lines := [][]byte{
		[]byte("2024-01-15 10:30:00.123 ERROR [main] c.e.OrderService - order failed"),
		[]byte("java.lang.IllegalStateException: inventory unavailable for sku 8c1f2a"),
		[]byte("\tat com.example.orders.OrderService.reserve(OrderService.java:214)"),
		[]byte("\tat com.example.orders.OrderService.place(OrderService.java:132)"),
		[]byte("\tat com.example.api.OrderController.create(OrderController.java:58)"),
		[]byte("Caused by: java.net.SocketTimeoutException: Read timed out"),
		[]byte("\tat java.base/java.net.SocketInputStream.socketRead0(Native Method)"),
		[]byte("\t... 42 more"),
	}
	j := NewJoiner(regexp.MustCompile(`^\d{4}-\d{2}-\d{2} `), 500, 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range lines {
			j.Add(l)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(lines)), "ns/line")
}
