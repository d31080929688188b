package parse

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

var typicalKeys = JSONKeys{
	Severity: []string{"level", "severity", "lvl"},
	Message:  []string{"msg", "message"},
	Time:     []string{"time", "ts", "timestamp"},
}

// record is what a test expects of a LogRecord.
type record struct {
	sevText string
	sevNum  plog.SeverityNumber
	body    any
	ts      int64
	attrs   map[string]any
}

func recordOf(rec plog.LogRecord) record {
	return record{
		sevText: rec.SeverityText(),
		sevNum:  rec.SeverityNumber(),
		body:    rec.Body().AsRaw(),
		ts:      int64(rec.Timestamp()),
		attrs:   rec.Attributes().AsRaw(),
	}
}

func TestJSONParser(t *testing.T) {
	tests := []struct {
		name string
		body string
		keys JSONKeys
		want record
	}{
		{
			name: "zap production line",
			body: `{"level":"info","ts":1705314600.123456,"caller":"server/main.go:42","msg":"request served","method":"GET","path":"/api/v1/items","status":200,"latency":0.0123,"ok":true,"tags":["a","b"],"req":{"id":"x1","headers":{"n":1}},"none":null}`,
			keys: typicalKeys,
			want: record{
				sevText: "info", sevNum: plog.SeverityNumberInfo, body: "request served", ts: 1705314600123456000,
				attrs: map[string]any{
					"caller": "server/main.go:42", "method": "GET", "path": "/api/v1/items", "status": int64(200),
					"latency": 0.0123, "ok": true, "tags": []any{"a", "b"},
					"req": map[string]any{"id": "x1", "headers": map[string]any{"n": int64(1)}}, "none": nil,
				},
			},
		},
		{
			name: "logrus line",
			body: `{"level":"warning","msg":"disk 91% full","time":"2024-01-15T11:30:00+01:00","mount":"/data"}`,
			keys: typicalKeys,
			want: record{
				sevText: "warning", sevNum: plog.SeverityNumberWarn, body: "disk 91% full", ts: ns("2024-01-15T10:30:00Z"),
				attrs: map[string]any{"mount": "/data"},
			},
		},
		{
			name: "pino line: numeric level, epoch milliseconds",
			body: `{"level":30,"time":1705314600123,"pid":7,"hostname":"web-1","msg":"listening"}`,
			keys: typicalKeys,
			want: record{
				sevText: "30", sevNum: plog.SeverityNumberInfo, body: "listening", ts: 1705314600123000000,
				attrs: map[string]any{"pid": int64(7), "hostname": "web-1"},
			},
		},
		{
			name: "earlier key of a list wins, the other stays an attribute",
			body: `{"message":"second choice","severity":"ERROR","msg":"first choice","level":"debug"}`,
			keys: typicalKeys,
			want: record{
				sevText: "debug", sevNum: plog.SeverityNumberDebug, body: "first choice",
				attrs: map[string]any{"message": "second choice", "severity": "ERROR"},
			},
		},
		{
			name: "unusable values stay attributes and the next key is used",
			body: `{"time":"yesterday","ts":1705314600,"msg":{"nested":true},"message":"text","level":{"x":1},"lvl":"E"}`,
			keys: typicalKeys,
			want: record{
				sevText: "E", sevNum: plog.SeverityNumberUnspecified, body: "text", ts: 1705314600000000000,
				attrs: map[string]any{"time": "yesterday", "msg": map[string]any{"nested": true}, "level": map[string]any{"x": int64(1)}},
			},
		},
		{
			name: "duplicate keys: the last wins",
			body: `{"a":1,"msg":"x","a":2,"msg":"y"}`,
			keys: typicalKeys,
			want: record{body: "y", attrs: map[string]any{"a": int64(2)}},
		},
		{
			name: "escaped keys and values",
			body: `{"m\u0073g":"caf\u00E9 \"q\" \\ \/ \b\f\n\r\t \uD83D\uDE00 \ud800","k\u00e9y":"v","o":{"\u00e9":"\u00c9"}}`,
			keys: typicalKeys,
			want: record{body: "café \"q\" \\ / \b\f\n\r\t 😀 \uFFFD", attrs: map[string]any{"kéy": "v", "o": map[string]any{"é": "É"}}},
		},
		{
			name: "invalid UTF-8 becomes U+FFFD",
			body: "{\"msg\":\"a\xffb\",\"k\xfe\":\"\xc3\"}",
			keys: typicalKeys,
			want: record{body: "a\uFFFDb", attrs: map[string]any{"k\uFFFD": "\uFFFD"}},
		},
		{
			name: "numbers",
			body: `{"i":-9223372036854775808,"j":9223372036854775807,"big":9223372036854775808,"f":1.5,"e":1e3,"z":-0,"huge":1e400,"tiny":1e-400}`,
			want: record{attrs: map[string]any{
				"i": int64(-9223372036854775808), "j": int64(9223372036854775807), "big": 9223372036854775808.0,
				"f": 1.5, "e": 1000.0, "z": int64(0), "huge": "1e400", "tiny": 0.0,
			}},
		},
		{
			name: "no keys mapped: everything is an attribute",
			body: ` {"level":"info","msg":"m","time":"2024-01-15T10:30:00Z"} ` + "\r\n",
			want: record{attrs: map[string]any{"level": "info", "msg": "m", "time": "2024-01-15T10:30:00Z"}},
		},
		{
			name: "empty object",
			body: `{}`,
			keys: typicalKeys,
			want: record{attrs: map[string]any{}},
		},
		{
			name: "empty containers",
			body: `{"o":{},"a":[],"s":""}`,
			want: record{attrs: map[string]any{"o": map[string]any{}, "a": []any{}, "s": ""}},
		},
		{
			name: "severity as a string of digits (journald PRIORITY)",
			body: `{"PRIORITY":"3","MESSAGE":"failed"}`,
			keys: JSONKeys{Severity: []string{"PRIORITY"}, Message: []string{"MESSAGE"}},
			want: record{sevText: "3", sevNum: plog.SeverityNumberError, body: "failed", attrs: map[string]any{}},
		},
		{
			name: "timestamp in nanoseconds and an RFC 3339 string lower in the list",
			body: `{"timestamp":"2024-01-15T10:30:00Z","ts":1705314600123456789}`,
			keys: typicalKeys,
			want: record{ts: 1705314600123456789, attrs: map[string]any{"timestamp": "2024-01-15T10:30:00Z"}},
		},
		{
			name: "negative and zero times are not times",
			body: `{"time":-1,"ts":0}`,
			keys: typicalKeys,
			want: record{attrs: map[string]any{"time": int64(-1), "ts": int64(0)}},
		},
	}
	var p JSONParser
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := plog.NewLogRecord()
			require.NoError(t, p.Parse([]byte(tt.body), tt.keys, rec))
			got := recordOf(rec)
			if tt.want.body == nil {
				tt.want.body = nil
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestJSONParserKeepsAndOverwritesAttributes(t *testing.T) {
	rec := plog.NewLogRecord()
	rec.Attributes().PutStr("log.iostream", "stdout")
	rec.Attributes().PutStr("stream", "theirs")
	rec.Body().SetStr("raw line")
	var p JSONParser
	require.NoError(t, p.Parse([]byte(`{"stream":"ours","x":1}`), typicalKeys, rec))
	assert.Equal(t, map[string]any{"log.iostream": "stdout", "stream": "ours", "x": int64(1)}, rec.Attributes().AsRaw())
	assert.Equal(t, "raw line", rec.Body().Str(), "Body is kept without a message key")
}

func TestJSONParserErrors(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 32) + "1" + strings.Repeat("}", 32)
	tests := []struct {
		name, body, wantErr string
		p                   JSONParser
	}{
		{name: "empty", body: "", wantErr: ErrNotObject.Error()},
		{name: "blank", body: " \t", wantErr: ErrNotObject.Error()},
		{name: "text", body: "GET /healthz 200", wantErr: ErrNotObject.Error()},
		{name: "array", body: `[{"a":1}]`, wantErr: ErrNotObject.Error()},
		{name: "string", body: `"a"`, wantErr: ErrNotObject.Error()},
		{name: "truncated", body: `{"a":"b`, wantErr: "cannot parse JSON body: unterminated string at byte 5"},
		{name: "truncated after a key", body: `{"a"`, wantErr: "unexpected end of input, expecting ':' after a key at byte 4"},
		{name: "truncated object", body: `{"a":1`, wantErr: "unexpected end of input, expecting ',' or '}' after an object value at byte 6"},
		{name: "two dots", body: `{"a":1.2.3}`, wantErr: "invalid character '.', expecting ',' or '}' after an object value at byte 8"},
		{name: "bare minus", body: `{"a":-}`, wantErr: "invalid character '}', expecting a digit in a number at byte 6"},
		{name: "leading zero", body: `{"a":01}`, wantErr: "invalid character '1', expecting ',' or '}' after an object value at byte 6"},
		{name: "dot without digits", body: `{"a":1.}`, wantErr: "expecting a digit after the decimal point at byte 7"},
		{name: "exponent without digits", body: `{"a":1e+}`, wantErr: "expecting a digit in the exponent at byte 8"},
		{name: "NaN", body: `{"a":NaN}`, wantErr: "invalid character 'N', expecting a value at byte 5"},
		{name: "Infinity", body: `{"a":-Infinity}`, wantErr: "expecting a digit in a number at byte 6"},
		{name: "bad literal", body: `{"a":nul}`, wantErr: "invalid literal, expecting null at byte 5"},
		{name: "trailing comma", body: `{"a":1,}`, wantErr: `invalid character '}', expecting '"' to begin a key at byte 7`},
		{name: "trailing comma in array", body: `{"a":[1,]}`, wantErr: "invalid character ']', expecting a value at byte 8"},
		{name: "single quotes", body: `{'a':1}`, wantErr: `invalid character '\'', expecting '"' to begin a key at byte 1`},
		{name: "unquoted key", body: `{a:1}`, wantErr: "expecting '\"' to begin a key at byte 1"},
		{name: "raw newline in a string", body: "{\"a\":\"x\ny\"}", wantErr: "control character 0x0a in string at byte 7"},
		{name: "bad escape", body: `{"a":"\q"}`, wantErr: `invalid escape "\\q" in string at byte 6`},
		{name: "bad unicode escape", body: `{"a":"\u12g4"}`, wantErr: `invalid \u escape in string at byte 6`},
		{name: "nested: no colon", body: `{"a":{"b" 1}}`, wantErr: "invalid character '1', expecting ':' after a key at byte 10"},
		{name: "nested: number key", body: `{"a":{1:2}}`, wantErr: `invalid character '1', expecting '"' to begin a key at byte 6`},
		{name: "nested: no comma", body: `{"a":{"b":1 "c":2}}`, wantErr: "invalid character '\"', expecting ',' or '}' after an object value at byte 12"},
		{name: "nested: bad escape", body: `{"a":{"b":"\x"}}`, wantErr: `invalid escape "\\x" in string at byte 11`},
		{name: "nested: bad key escape", body: `{"a":{"\u00g0":1}}`, wantErr: `invalid \u escape in string at byte 7`},
		{name: "nested: unterminated key", body: `{"a":{"b`, wantErr: "unterminated string at byte 6"},
		{name: "array: no comma", body: `{"a":[1 2]}`, wantErr: "invalid character '2', expecting ',' or ']' after an array element at byte 8"},
		{name: "array: truncated", body: `{"a":[`, wantErr: "unexpected end of input, expecting a value at byte 6"},
		{name: "bad second half of a surrogate pair", body: `{"a":"\ud83d\ude0g"}`, wantErr: `invalid \u escape in string at byte 12`},
		{name: "two objects", body: `{"a":1}{"b":2}`, wantErr: "unexpected data after the object at byte 7"},
		{name: "depth cap", body: `{"x":` + deep + `}`, wantErr: "nested deeper than 32 levels (the JSON depth cap) at byte 160"},
		{name: "depth cap set", body: `{"a":{"b":[1]}}`, p: JSONParser{MaxDepth: 2}, wantErr: "nested deeper than 2 levels (the JSON depth cap) at byte 10"},
		{name: "value cap", body: `{"a":[1,2,3],"b":4}`, p: JSONParser{MaxValues: 4}, wantErr: "more than 4 values (the JSON value cap) at byte 17"},
		{name: "long garbage is not quoted whole", body: `{"a":` + strings.Repeat("x", 10000) + `}`, wantErr: "invalid character 'x', expecting a value at byte 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := plog.NewLogRecord()
			rec.Body().SetStr("raw")
			rec.Attributes().PutStr("k", "v")
			rec.SetSeverityText("keep")
			before := plog.NewLogRecord()
			rec.CopyTo(before)

			err := tt.p.Parse([]byte(tt.body), typicalKeys, rec)
			require.Error(t, err)
			assert.True(t, strings.HasSuffix(err.Error(), tt.wantErr), "error: %s\nwant suffix: %s", err, tt.wantErr)
			if tt.wantErr != ErrNotObject.Error() {
				assert.True(t, strings.HasPrefix(err.Error(), "cannot parse JSON body: "), err.Error())
			}
			assert.Less(t, len(err.Error()), 200)
			assert.Equal(t, recordOf(before), recordOf(rec), "rec is unchanged on error")
		})
	}
	// Exactly at the caps is fine.
	p := JSONParser{MaxDepth: 3, MaxValues: 4}
	require.NoError(t, p.Parse([]byte(`{"a":{"b":[1]},"c":2}`), JSONKeys{}, plog.NewLogRecord()))
	var dp JSONParser
	require.NoError(t, dp.Parse([]byte(deep), JSONKeys{}, plog.NewLogRecord()))
}

func TestJSONParserMatchesEncodingJSON(t *testing.T) {
	// Without mapped keys the attributes are what encoding/json decodes, with
	// numbers as int64 where integral.
	body := `{"a":"x\u00e9\ud83d\ude00","b":[1,2.5,"s",null,true,{"c":[]}],"d":{"e":{"f":-3}}}`
	var want map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &want))
	m := pcommon.NewMap()
	require.NoError(t, m.FromRaw(want))
	rec := plog.NewLogRecord()
	var p JSONParser
	require.NoError(t, p.Parse([]byte(body), JSONKeys{}, rec))
	assert.True(t, equalLoose(m.AsRaw(), rec.Attributes().AsRaw()), "%v\n%v", m.AsRaw(), rec.Attributes().AsRaw())
}

// equalLoose compares decoded JSON, taking int64 and float64 of the same
// value as equal.
func equalLoose(a, b any) bool {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for k, v := range av {
			if w, ok := bv[k]; !ok || !equalLoose(v, w) {
				return false
			}
		}
		return true
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for i := range av {
			if !equalLoose(av[i], bv[i]) {
				return false
			}
		}
		return true
	case int64:
		switch bv := b.(type) {
		case int64:
			return av == bv
		case float64:
			return float64(av) == bv
		}
		return false
	case float64:
		switch bv := b.(type) {
		case int64:
			return av == float64(bv)
		case float64:
			return av == bv
		}
		return false
	default:
		return a == b
	}
}

func TestSeverityNumber(t *testing.T) {
	tests := map[string]plog.SeverityNumber{
		"trace": plog.SeverityNumberTrace, "TRACE": plog.SeverityNumberTrace,
		"debug": plog.SeverityNumberDebug, "DBG": plog.SeverityNumberDebug,
		"info": plog.SeverityNumberInfo, "Information": plog.SeverityNumberInfo, "INFORMATIONAL": plog.SeverityNumberInfo,
		"notice": plog.SeverityNumberInfo2,
		"warn":   plog.SeverityNumberWarn, "Warning": plog.SeverityNumberWarn,
		"error": plog.SeverityNumberError, "ERR": plog.SeverityNumberError,
		"critical": plog.SeverityNumberError2, "crit": plog.SeverityNumberError2, "DPANIC": plog.SeverityNumberError2,
		"alert": plog.SeverityNumberError3, "panic": plog.SeverityNumberError3,
		"fatal": plog.SeverityNumberFatal, "emergency": plog.SeverityNumberFatal, "EMERG": plog.SeverityNumberFatal,
		"0": plog.SeverityNumberFatal, "1": plog.SeverityNumberError3, "2": plog.SeverityNumberError2, "3": plog.SeverityNumberError,
		"4": plog.SeverityNumberWarn, "5": plog.SeverityNumberInfo2, "6": plog.SeverityNumberInfo, "7": plog.SeverityNumberDebug,
		"10": plog.SeverityNumberTrace, "20": plog.SeverityNumberDebug, "30": plog.SeverityNumberInfo,
		"40": plog.SeverityNumberWarn, "50": plog.SeverityNumberError, "60": plog.SeverityNumberFatal,
		"": plog.SeverityNumberUnspecified, "8": plog.SeverityNumberUnspecified, "-1": plog.SeverityNumberUnspecified,
		"3.0": plog.SeverityNumberUnspecified, "verbose": plog.SeverityNumberUnspecified, "informationalx": plog.SeverityNumberUnspecified,
		"I": plog.SeverityNumberUnspecified, "inf": plog.SeverityNumberUnspecified, "info ": plog.SeverityNumberUnspecified,
	}
	for in, want := range tests {
		assert.Equal(t, want, severityNumber([]byte(in)), "%q", in)
	}
}

func TestEpochNanos(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1705314600", 1705314600_000000000, true},
		{"1705314600.123456789", 1705314600_123456789, true},
		{"1705314600.1234567899", 1705314600_123456789, true},
		{"1705314600.5", 1705314600_500000000, true},
		{"1705314600123", 1705314600_123000000, true},
		{"1705314600123.456", 1705314600_123456000, true},
		{"1705314600123456", 1705314600_123456000, true},
		{"1705314600123456.7", 1705314600_123456700, true},
		{"1705314600123456789", 1705314600_123456789, true},
		{"1.7053146e9", 1705314600_000000000, true},
		{"1.7053146E12", 1705314600_000000000, true},
		{"9223372036", 9223372036_000000000, true},
		{"9223372037", 0, false}, // seconds past 2262
		{"9999999999", 0, false},
		{"10000000000", 10000000000_000000, true}, // milliseconds from 1e10
		{"9223372036854", 9223372036854_000000, true},
		{"9999999999999", 0, false},
		{"10000000000000", 10000000000000_000, true},   // microseconds from 1e13
		{"10000000000000000", 10000000000000000, true}, // nanoseconds from 1e16
		{"9223372036854775807", 9223372036854775807, true},
		{"9223372036854775808", 0, false},
		{"99999999999999999999", 0, false},
		{"1e30", 0, false},
		{"0", 0, false},
		{"0.0", 0, false},
		{"-1705314600", 0, false},
		{"0.000000001", 1, true},
		{"0.0000000001", 0, false},
	}
	for _, tt := range tests {
		got, ok := epochNanos([]byte(tt.in))
		assert.Equal(t, tt.ok, ok, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
}
