package parse

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

var criSeeds = []string{
	"2024-01-15T10:30:00.123456789Z stdout F hello world",
	"2024-01-15T10:30:00.1234Z stderr P partial",
	"2024-01-15T11:30:00.120000000+01:00 stdout F started",
	"2024-01-15T10:30:00Z stdout F ",
	"2024-01-15T10:30:00Z stdout F",
	"2024-01-15T10:30:00Z stdout F \ta b\r",
	"2024-01-15T10:30:00Z stdout P:x \xff",
	"2024-01-15T10:30:00Z stdin F x",
	"2024-02-30T10:30:00Z stdout F x",
	"",
}

func FuzzCRI(f *testing.F) {
	for _, s := range criSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		l, err := CRI(line)
		if err != nil {
			if len(err.Error()) > 400 {
				t.Fatalf("error of %d bytes: %.100s", len(err.Error()), err)
			}
			return
		}
		if !bytes.HasSuffix(line, l.Content) || (len(l.Content) > 0 && &line[len(line)-len(l.Content)] != &l.Content[0]) {
			t.Fatalf("content %q is not a suffix of %q", l.Content, line)
		}
		if l.Stream != StreamStdout && l.Stream != StreamStderr {
			t.Fatalf("stream %d", l.Stream)
		}
		ts, err := ParseTime(line[:bytes.IndexByte(line, ' ')])
		if err != nil || ts != l.Time {
			t.Fatalf("time %d, ParseTime %d, %v", l.Time, ts, err)
		}
	})
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		"2024-01-15T10:30:00.123456789Z", "2024-01-15T10:30:00Z", "2024-01-15T11:30:00.12+01:00",
		"1677-09-21T00:12:43.145224192Z", "2262-04-11T23:47:16.854775807Z", "2024-02-29T00:00:00-23:59",
		"0000-01-01T00:00:00Z", "2024-01-15T10:30:00,5Z",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseTime(b)
		if err != nil {
			if len(err.Error()) > 200 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		// Whatever ParseTime takes, time.Parse takes, to the same instant.
		tm, err := time.Parse(time.RFC3339Nano, string(b))
		if err != nil {
			t.Fatalf("ParseTime(%q) = %d, time.Parse: %v", b, got, err)
		}
		if tm.UnixNano() != got {
			t.Fatalf("ParseTime(%q) = %d, time.Parse %d", b, got, tm.UnixNano())
		}
	})
}

var dockerSeeds = []string{
	`{"log":"hello world\n","stream":"stdout","time":"2024-01-15T10:30:00.123456789Z"}`,
	`{"log":"first 16 KiB","stream":"stderr","time":"2024-01-15T10:30:00.123456789Z"}`,
	`{"log":"caf\u00e9 \"q\" \\ \/ \b\f\r\t\n","stream":"stdout","time":"2024-01-15T10:30:00Z"}`,
	`{"log":"\ud83d\ude00 \ud83d x \ude00\n","stream":"stdout","time":"2024-01-15T10:30:00Z"}`,
	`{"log":"\u003cb\u003e\n","stream":"stdout","attrs":{"tag":"web","n":[1,2.5e3,null,true]},"time":"2024-01-15T10:30:00Z"}`,
	`{"time":"2024-01-15T10:30:00Z","stre\u0061m":"stdout","log":"x\n","log":"y\n"}`,
	"{\"log\":\"\xff\\n\",\"stream\":\"stdout\",\"time\":\"2024-01-15T10:30:00Z\"}",
	`{}`,
	``,
}

func FuzzDocker(f *testing.F) {
	for _, s := range dockerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		l, scratch, err := Docker(line, nil)
		if err != nil {
			if len(err.Error()) > 400 {
				t.Fatalf("error of %d bytes: %.100s", len(err.Error()), err)
			}
		} else {
			if !json.Valid(line) {
				t.Fatalf("Docker took %q, which is not JSON", line)
			}
			if len(l.Content) > 0 && &l.Content[0] != &scratch[0] {
				t.Fatal("content does not alias scratch")
			}
			// What encoding/json decodes from the same line.
			var m map[string]any
			if err := json.Unmarshal(line, &m); err == nil && utf8.Valid(line) {
				want, _ := m["log"].(string)
				got := string(l.Content)
				if !l.Partial {
					got += "\n"
				}
				if got != want {
					t.Fatalf("content %q, encoding/json %q", got, want)
				}
			}
		}

		// The fuzzer's bytes as the content of a line encoded as Docker does.
		content := strings.ToValidUTF8(string(line), "\uFFFD")
		enc, err := json.Marshal(struct {
			Log    string `json:"log"`
			Stream string `json:"stream"`
			Time   string `json:"time"`
		}{content + "\n", "stderr", "2024-01-15T10:30:00.123456789Z"})
		if err != nil {
			t.Fatal(err)
		}
		l, _, err = Docker(enc, scratch)
		if err != nil {
			t.Fatalf("Docker(%q): %v", enc, err)
		}
		if string(l.Content) != content || l.Partial || l.Stream != StreamStderr {
			t.Fatalf("round trip of %q through encoding/json gave %q", content, l.Content)
		}
	})
}

var jsonSeeds = []string{
	`{"level":"info","ts":1705314600.123456,"caller":"main.go:42","msg":"served","status":200,"ok":true,"tags":["a"],"req":{"id":"x"},"none":null}`,
	`{"level":30,"time":1705314600123,"msg":"listening"}`,
	`{"level":"warning","msg":"x","time":"2024-01-15T11:30:00+01:00"}`,
	`{"m\u0073g":"caf\u00e9 \ud83d\ude00 \ud800","k\u00e9y":"v","a":1,"a":2}`,
	"{\"msg\":\"a\xffb\",\"k\xfe\":\"\xc3\"}",
	`{"i":-9223372036854775808,"big":9223372036854775808,"f":1.5e-3,"huge":1e400}`,
	`{"a":[[[[{"b":[]}]]]],"c":{}}`,
	`{"a":1.2.3}`,
	`[1]`,
	``,
}

func FuzzJSONBody(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	var p JSONParser
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, keys := range []JSONKeys{{}, typicalKeys} {
			rec := plog.NewLogRecord()
			rec.Body().SetStr("raw")
			rec.Attributes().PutStr("log.iostream", "stdout")
			before := recordOf(rec)
			err := p.Parse(body, keys, rec)
			if err != nil {
				if len(err.Error()) > 400 {
					t.Fatalf("error of %d bytes: %.100s", len(err.Error()), err)
				}
				if after := recordOf(rec); !equalLoose(before.attrs, after.attrs) || before.body != after.body ||
					after.sevText != "" || after.ts != 0 {
					t.Fatalf("rec changed on error %v", err)
				}
				continue
			}
			if !json.Valid(body) {
				t.Fatalf("Parse took %q, which is not JSON", body)
			}
			if !utf8.ValidString(rec.SeverityText()) || !utf8.ValidString(rec.Body().Str()) {
				t.Fatal("invalid UTF-8 in the record")
			}
			if len(keys.Message) > 0 {
				continue
			}
			// Without mapped keys, the attributes are what encoding/json
			// decodes.
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				continue // numbers beyond float64
			}
			want := pcommon.NewMap()
			want.PutStr("log.iostream", "stdout")
			for k, v := range m {
				if err := want.PutEmpty(k).FromRaw(v); err != nil {
					t.Fatal(err)
				}
			}
			if !equalLoose(want.AsRaw(), rec.Attributes().AsRaw()) {
				t.Fatalf("attributes %v, encoding/json %v", rec.Attributes().AsRaw(), want.AsRaw())
			}
		}
	})
}

func FuzzPodPath(f *testing.F) {
	for _, s := range []string{
		"/var/log/pods/default_web-7d4b9c8f6-x2x7k_4b1c5a0e-2f3d-4e5a-9b8c-7d6e5f4a3b2c/nginx/0.log",
		"/hostfs/var/log/pods/kube-system_etcd-node.a_3c2a8f9b/etcd/12.log.20240115-103000.gz",
		`C:\var\log\pods\a_b_c\d\1.log`,
		"/var/log/containers/web_default_nginx-0123.log",
		"a_b_c/d/0.log.tmp",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		pp, ok := ParsePodPath(path)
		if !ok {
			if pp != (PodPath{}) {
				t.Fatalf("not ok, but %+v", pp)
			}
			return
		}
		for _, s := range []string{pp.Namespace, pp.Pod, pp.UID, pp.Container, pp.RestartCount} {
			if s == "" || strings.ContainsAny(s, `_/\`) {
				t.Fatalf("%+v", pp)
			}
		}
		suffix := pp.Namespace + "_" + pp.Pod + "_" + pp.UID + "/" + pp.Container + "/" + pp.RestartCount + ".log"
		p := strings.ReplaceAll(path, `\`, "/")
		if i := strings.LastIndex(p, ".log"); !strings.HasSuffix(p[:i+4], suffix) {
			t.Fatalf("%q does not end in %q", path, suffix)
		}
	})
}

func FuzzJoiner(f *testing.F) {
	f.Add([]byte("java.lang.Exception: x\n\tat a.b(C.java:1)\n\tat d.e(F.java:2)\nCaused by: y\n\t... 1 more\nnext"), 3, 40)
	f.Add([]byte("ab€cd\n ef\n\n\nx"), 2, 4)
	f.Add([]byte(""), 0, 0)
	f.Fuzz(func(t *testing.T, data []byte, maxLines, maxBytes int) {
		maxLines, maxBytes = maxLines%200, maxBytes%5000
		j := NewJoiner(notContinuation, maxLines, maxBytes)
		maxLines, maxBytes = max(maxLines, 1), max(maxBytes, 1)
		lines := bytes.Split(data, []byte("\n"))
		var got []string
		check := func(rec []byte, ok bool) {
			if !ok {
				return
			}
			if len(rec) > maxBytes {
				t.Fatalf("record of %d bytes, max %d", len(rec), maxBytes)
			}
			if n := bytes.Count(rec, []byte("\n")) + 1; n > maxLines {
				t.Fatalf("record of %d lines, max %d", n, maxLines)
			}
			got = append(got, string(rec))
		}
		truncated := false
		for _, l := range lines {
			truncated = truncated || len(l) > maxBytes
			check(j.Add(l))
		}
		check(j.Flush())
		if !truncated && strings.Join(got, "\n") != string(data) {
			t.Fatalf("records %q do not join back to %q", got, data)
		}
		st := j.Stats()
		if truncated != (st.Truncated > 0) {
			t.Fatalf("truncated %v, stats %+v", truncated, st)
		}
	})
}
