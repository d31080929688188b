package parse

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
)

func ns(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixNano()
}

func TestStreamAndFormatString(t *testing.T) {
	assert.Equal(t, "stdout", StreamStdout.String())
	assert.Equal(t, "stderr", StreamStderr.String())
	assert.Equal(t, "unknown", Stream(0).String())
	assert.Equal(t, "cri", FormatCRI.String())
	assert.Equal(t, "docker", FormatDocker.String())
	assert.Equal(t, "unknown", Format(0).String())
}

func TestDetect(t *testing.T) {
	assert.Equal(t, FormatDocker, Detect([]byte(`{"log":"x\n","stream":"stdout","time":"2024-01-15T10:30:00Z"}`)))
	assert.Equal(t, FormatCRI, Detect([]byte(`2024-01-15T10:30:00.123456789Z stdout F {"level":"info"}`)))
	assert.Equal(t, FormatCRI, Detect(nil))
	assert.Equal(t, FormatCRI, Detect([]byte(` {"log":""}`)))
}

func TestCRI(t *testing.T) {
	tests := []struct {
		name, line string
		want       Line
		wantErr    string
	}{
		{
			name: "containerd full line",
			line: "2024-01-15T10:30:00.123456789Z stdout F hello world",
			want: Line{Time: ns("2024-01-15T10:30:00.123456789Z"), Stream: StreamStdout, Content: []byte("hello world")},
		},
		{
			name: "containerd trims trailing zeros of the fraction",
			line: "2024-01-15T10:30:00.1234Z stderr F x",
			want: Line{Time: ns("2024-01-15T10:30:00.1234Z"), Stream: StreamStderr, Content: []byte("x")},
		},
		{
			name: "no fraction",
			line: "2024-01-15T10:30:00Z stdout F x",
			want: Line{Time: ns("2024-01-15T10:30:00Z"), Stream: StreamStdout, Content: []byte("x")},
		},
		{
			name: "CRI-O, nine digits and a local offset",
			line: "2024-01-15T11:30:00.120000000+01:00 stdout F started",
			want: Line{Time: ns("2024-01-15T10:30:00.12Z"), Stream: StreamStdout, Content: []byte("started")},
		},
		{
			name: "negative offset",
			line: "2024-01-15T05:00:00.5-05:30 stdout F x",
			want: Line{Time: ns("2024-01-15T10:30:00.5Z"), Stream: StreamStdout, Content: []byte("x")},
		},
		{
			name: "partial line",
			line: "2024-01-15T10:30:00.123456789Z stdout P first 16 KiB of a long line",
			want: Line{Time: ns("2024-01-15T10:30:00.123456789Z"), Stream: StreamStdout, Partial: true, Content: []byte("first 16 KiB of a long line")},
		},
		{
			name: "empty content",
			line: "2024-01-15T10:30:00.123456789Z stdout F ",
			want: Line{Time: ns("2024-01-15T10:30:00.123456789Z"), Stream: StreamStdout, Content: []byte{}},
		},
		{
			name: "empty content without the space",
			line: "2024-01-15T10:30:00.123456789Z stderr F",
			want: Line{Time: ns("2024-01-15T10:30:00.123456789Z"), Stream: StreamStderr, Content: []byte{}},
		},
		{
			name: "spaces and tabs in the content are kept",
			line: "2024-01-15T10:30:00Z stdout F   indented\tand\ttabbed  ",
			want: Line{Time: ns("2024-01-15T10:30:00Z"), Stream: StreamStdout, Content: []byte("  indented\tand\ttabbed  ")},
		},
		{
			name: "carriage return is content",
			line: "2024-01-15T10:30:00Z stdout F windows line\r",
			want: Line{Time: ns("2024-01-15T10:30:00Z"), Stream: StreamStdout, Content: []byte("windows line\r")},
		},
		{
			name: "invalid UTF-8 is kept",
			line: "2024-01-15T10:30:00Z stdout F \xff\xfe bytes",
			want: Line{Time: ns("2024-01-15T10:30:00Z"), Stream: StreamStdout, Content: []byte("\xff\xfe bytes")},
		},
		{
			name: "JSON content",
			line: `2024-01-15T10:30:00Z stdout F {"level":"info","msg":"a b"}`,
			want: Line{Time: ns("2024-01-15T10:30:00Z"), Stream: StreamStdout, Content: []byte(`{"level":"info","msg":"a b"}`)},
		},
		{
			name: "further tags are ignored, as the kubelet does",
			line: "2024-01-15T10:30:00Z stdout P:x y",
			want: Line{Time: ns("2024-01-15T10:30:00Z"), Stream: StreamStdout, Partial: true, Content: []byte("y")},
		},
		{name: "empty", line: "", wantErr: "no space after the time"},
		{name: "time only", line: "2024-01-15T10:30:00Z", wantErr: "no space after the time"},
		{name: "no tag", line: "2024-01-15T10:30:00Z stdout", wantErr: "no tag after the stream at byte 21"},
		{name: "bad stream", line: "2024-01-15T10:30:00Z stdin F x", wantErr: `stream "stdin" at byte 21 is neither stdout nor stderr`},
		{name: "two spaces before the tag", line: "2024-01-15T10:30:00Z stdout  F x", wantErr: `tag "" at byte 28 is neither P nor F`},
		{name: "lowercase tag", line: "2024-01-15T10:30:00Z stdout f x", wantErr: `tag "f" at byte 28`},
		{name: "long tag", line: "2024-01-15T10:30:00Z stdout PF x", wantErr: `tag "PF" at byte 28`},
		{name: "bad tag", line: "2024-01-15T10:30:00Z stdout X x", wantErr: `tag "X" at byte 28`},
		{name: "month 13", line: "2024-13-15T10:30:00Z stdout F x", wantErr: "bad month at byte 5"},
		{name: "February 30", line: "2024-02-30T10:30:00Z stdout F x", wantErr: "bad day at byte 8"},
		{name: "no zone", line: "2024-01-15T10:30:00 stdout F x", wantErr: "expecting 'Z' or an offset"},
		{name: "not a time", line: "hello stdout F x", wantErr: `cannot parse time "hello"`},
		{name: "year past int64 ns", line: "2300-01-01T00:00:00Z stdout F x", wantErr: "out of the range of int64 nanoseconds"},
		{name: "a docker line", line: `{"log":"x\n","stream":"stdout","time":"2024-01-15T10:30:00Z"}`, wantErr: "no space after the time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CRI([]byte(tt.line))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Equal(t, Line{}, got)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Less(t, len(err.Error()), 200)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestCRIErrorQuotesLittle(t *testing.T) {
	long := "2024-01-15T10:30:00Z " + string(make([]byte, 10000)) + " F x"
	_, err := CRI([]byte(long))
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 300)
}

const dockerTime = `"time":"2024-01-15T10:30:00.123456789Z"`

func TestDocker(t *testing.T) {
	tm := ns("2024-01-15T10:30:00.123456789Z")
	tests := []struct {
		name, line string
		want       Line
		wantErr    string
	}{
		{
			name: "json-file line",
			line: `{"log":"hello world\n","stream":"stdout",` + dockerTime + `}`,
			want: Line{Time: tm, Stream: StreamStdout, Content: []byte("hello world")},
		},
		{
			name: "partial line: no final newline",
			line: `{"log":"first 16 KiB","stream":"stderr",` + dockerTime + `}`,
			want: Line{Time: tm, Stream: StreamStderr, Partial: true, Content: []byte("first 16 KiB")},
		},
		{
			name: "empty line",
			line: `{"log":"\n","stream":"stdout",` + dockerTime + `}`,
			want: Line{Time: tm, Stream: StreamStdout, Content: []byte{}},
		},
		{
			name: "escapes",
			line: `{"log":"caf\u00e9 \"quoted\" back\\slash\ttab \/ \b\f\r\n","stream":"stdout",` + dockerTime + `}`,
			want: Line{Time: tm, Stream: StreamStdout, Content: []byte("café \"quoted\" back\\slash\ttab / \b\f\r")},
		},
		{
			name: "newline inside the content",
			line: `{"log":"a\nb\n","stream":"stdout",` + dockerTime + `}`,
			want: Line{Time: tm, Stream: StreamStdout, Content: []byte("a\nb")},
		},
		{
			name: "Docker's HTML escapes",
			line: `{"log":"\u003cb\u003e \u0026 \u2028\n","stream":"stdout",` + dockerTime + `}`,
			want: Line{Time: tm, Stream: StreamStdout, Content: []byte("<b> & \u2028")},
		},
		{
			name: "surrogate pair",
			line: `{"log":"smile \ud83d\ude00!\n","stream":"stdout",` + dockerTime + `}`,
			want: Line{Time: tm, Stream: StreamStdout, Content: []byte("smile 😀!")},
		},
		{
			name: "lone surrogates become U+FFFD as in encoding/json",
			line: `{"log":"\ud83d x \ude00 \ud83d\u0041\n","stream":"stdout",` + dockerTime + `}`,
			want: Line{Time: tm, Stream: StreamStdout, Content: []byte("\uFFFD x \uFFFD \uFFFDA")},
		},
		{
			name: "invalid UTF-8 is kept",
			line: "{\"log\":\"\xff\xfe\\n\",\"stream\":\"stdout\"," + dockerTime + "}",
			want: Line{Time: tm, Stream: StreamStdout, Content: []byte("\xff\xfe")},
		},
		{
			name: "spaces, tabs and other keys (attrs from --log-opt labels)",
			line: " { \"log\" : \"  a\\tb \\n\" ,\t\"stream\":\"stderr\", \"attrs\":{\"tag\":\"web\",\"n\":[1,2.5e3,null,true]}, " + dockerTime + " } \r",
			want: Line{Time: tm, Stream: StreamStderr, Content: []byte("  a\tb ")},
		},
		{
			name: "keys in another order, escaped key",
			line: `{` + dockerTime + `,"stre\u0061m":"stdout","log":"x\n"}`,
			want: Line{Time: tm, Stream: StreamStdout, Content: []byte("x")},
		},
		{
			name: "offset time",
			line: `{"log":"x\n","stream":"stdout","time":"2024-01-15T12:30:00.123456789+02:00"}`,
			want: Line{Time: tm, Stream: StreamStdout, Content: []byte("x")},
		},
		{name: "empty", line: ``, wantErr: "unexpected end of input, expecting '{' at byte 0"},
		{name: "empty object", line: `{}`, wantErr: `missing "log"`},
		{name: "missing log", line: `{"stream":"stdout",` + dockerTime + `}`, wantErr: `missing "log"`},
		{name: "missing stream", line: `{"log":"x\n",` + dockerTime + `}`, wantErr: `missing "stream"`},
		{name: "missing time", line: `{"log":"x\n","stream":"stdout"}`, wantErr: `missing "time"`},
		{name: "bad stream", line: `{"log":"x\n","stream":"stdin",` + dockerTime + `}`, wantErr: `stream "stdin" at byte 22 is neither`},
		{name: "bad time", line: `{"log":"x\n","stream":"stdout","time":"2024-01-15T25:30:00Z"}`, wantErr: "time at byte 38: cannot parse time"},
		{name: "log not a string", line: `{"log":42,"stream":"stdout",` + dockerTime + `}`, wantErr: `"log" at byte 7 is not a string`},
		{name: "bad escape", line: `{"log":"a\x\n","stream":"stdout",` + dockerTime + `}`, wantErr: `invalid escape "\\x" in string at byte 9`},
		{name: "short unicode escape", line: `{"log":"a\u12","stream":"stdout",` + dockerTime + `}`, wantErr: `invalid \u escape in string at byte 9`},
		{name: "raw control character", line: "{\"log\":\"a\tb\\n\",\"stream\":\"stdout\"," + dockerTime + "}", wantErr: "control character 0x09 in string at byte 9"},
		{name: "unterminated", line: `{"log":"abc`, wantErr: "unterminated string at byte 7"},
		{name: "truncated after a value", line: `{"log":"abc\n"`, wantErr: "unexpected end of input, expecting ',' or '}'"},
		{name: "trailing data", line: `{"log":"x\n","stream":"stdout",` + dockerTime + `}x`, wantErr: "unexpected data after the object at byte 71"},
		{name: "trailing comma", line: `{"log":"x\n","stream":"stdout",` + dockerTime + `,}`, wantErr: `invalid character '}', expecting '"' to begin a key at byte 71`},
		{name: "bad value of another key", line: `{"log":"x\n","stream":"stdout","attrs":{"a":tru},` + dockerTime + `}`, wantErr: "invalid literal, expecting true at byte 44"},
		{name: "a CRI line", line: `2024-01-15T10:30:00Z stdout F x`, wantErr: "invalid character '2', expecting '{' at byte 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, scratch, err := Docker([]byte(tt.line), nil)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Equal(t, Line{}, got)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Less(t, len(err.Error()), 200)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			if len(got.Content) > 0 {
				assert.Same(t, &scratch[0], &got.Content[0], "Content aliases the scratch buffer")
			}
		})
	}
}

func TestDockerReusesScratch(t *testing.T) {
	scratch := make([]byte, 0, 64)
	l, scratch2, err := Docker([]byte(`{"log":"a\n","stream":"stdout",`+dockerTime+`}`), scratch)
	require.NoError(t, err)
	assert.Equal(t, "a", string(l.Content))
	assert.Same(t, &scratch[:1][0], &scratch2[0])
	l, _, err = Docker([]byte(`{"log":"bc\n","stream":"stdout",`+dockerTime+`}`), scratch2)
	require.NoError(t, err)
	assert.Equal(t, "bc", string(l.Content))
}

func TestDockerDepthCap(t *testing.T) {
	deep := `{"attrs":` + string(repeat('[', 100000)) + `,"log":"x\n"}`
	_, _, err := Docker([]byte(deep), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nested deeper than 32 levels (the JSON depth cap) at byte 40")
}

func repeat(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return tm
}

func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations differ under the race detector")
	}
	cri := []byte("2024-01-15T11:30:00.123456789+01:00 stdout F hello world")
	docker := []byte(`{"log":"caf\u00e9 \"q\" \ud83d\ude00\n","stream":"stdout","attrs":{"a":[1,{"b":null}]},"time":"2024-01-15T10:30:00.123456789Z"}`)
	scratch := make([]byte, 0, 256)
	var p JSONParser
	rec := plog.NewLogRecord()
	for name, f := range map[string]func(){
		"CRI":           func() { _, _ = CRI(cri) },
		"Docker":        func() { _, scratch, _ = Docker(docker, scratch) },
		"ParseTime":     func() { _, _ = ParseTime(cri[:35]) },
		"JSON not JSON": func() { _ = p.Parse(cri, JSONKeys{}, rec) },
		"JSON bad JSON": func() { _ = p.Parse([]byte(`{"a":`), JSONKeys{}, rec) },
		"Detect":        func() { _ = Detect(docker) },
		"Stream.String": func() { _ = StreamStderr.String() },
	} {
		allocs := testing.AllocsPerRun(100, f)
		if name == "JSON bad JSON" {
			assert.Positive(t, allocs, "errors allocate") // documents that only ErrNotObject is free
			continue
		}
		assert.Zero(t, allocs, name)
	}
}
