package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// rawCodec sends bytes as they are, so a test can put anything on the wire
// of a gRPC method.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Unmarshal([]byte, any) error   { return nil }
func (rawCodec) Name() string                  { return "proto" }

// millionSeries serves a Prometheus exposition of n series, streamed.
func millionSeries(n int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		bw := bufioWriter(w)
		fmt.Fprintln(bw, "# TYPE huge_cardinality gauge")
		for i := range n {
			fmt.Fprintf(bw, "huge_cardinality{id=\"%d\",pod=\"pod-%d\"} %d\n", i, i%1000, i)
		}
		_ = bw.Flush()
	}
}

// TestBadInput throws malformed and oversized input at every kind of
// listener of one agent at once while a well-formed OTLP stream flows: each
// bad input gets a clear error or is cut and counted, the agent never
// crashes, and every record of the good stream arrives.
func TestBadInput(t *testing.T) {
	sink, err := otlpsink.Start("127.0.0.1:0", true)
	require.NoError(t, err)
	t.Cleanup(sink.Stop)
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	require.NoError(t, os.MkdirAll(logDir, 0o755))
	target := &http.Server{Handler: millionSeries(1_000_000), ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = target.Serve(ln) }()
	t.Cleanup(func() { _ = target.Close() })

	health, grpcPort, httpPort, sysPort, tel := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	cfg := fmt.Sprintf(`
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
      http:
        endpoint: 127.0.0.1:%d
  file_log:
    include: [%s/*.log]
    start_at: beginning
    poll_interval: 100ms
    max_log_size: 1MiB
  syslog:
    protocol: rfc5424
    tcp:
      listen_address: 127.0.0.1:%d
      max_log_size: 64KiB
  prometheus:
    config:
      scrape_configs:
        - job_name: million
          scrape_interval: 2s
          scrape_timeout: 2s
          # A target gone wild: refused whole, with the reason in the log and
          # up = 0, instead of a million series in memory.
          sample_limit: 100000
          body_size_limit: 100MB
          static_configs:
            - targets: [%s]
processors:
  memory_limiter:
    check_interval: 500ms
    limit_mib: 1024
    spike_limit_mib: 256
  batch:
    timeout: 100ms
exporters:
  otlp_grpc:
    endpoint: %s
    tls:
      insecure: true
    sending_queue:
      queue_size: 10000
service:
  extensions: [health_check]
%s
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [otlp_grpc]
    logs:
      receivers: [otlp, file_log, syslog]
      processors: [memory_limiter, batch]
      exporters: [otlp_grpc]
    metrics:
      receivers: [otlp, prometheus]
      processors: [memory_limiter, batch]
      exporters: [otlp_grpc]
`, health, grpcPort, httpPort, logDir, sysPort, ln.Addr().String(), sink.Addr, telemetryYAML(tel))
	a := startAgent(t, health, "--config", writeConfig(t, cfg))
	keepAgentLog(t, a)
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", grpcPort)
	httpURL := fmt.Sprintf("http://127.0.0.1:%d", httpPort)

	// The good stream, all along.
	good := startLoad(t, grpcAddr, "", loadRate{Logs: 10})

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	report := map[string]string{}

	t.Run("otlp-grpc-garbage", func(t *testing.T) {
		garbage := make([]byte, 64<<10)
		_, _ = rand.Read(garbage)
		for name, body := range map[string][]byte{
			"random":    garbage,
			"truncated": validTraceRequest(t)[:40],
			"deep":      bytes.Repeat([]byte{0x0a, 0x80, 0x80, 0x04}, 5000), // nested length prefixes
		} {
			err := conn.Invoke(ctx, "/opentelemetry.proto.collector.trace.v1.TraceService/Export", body, new([]byte), grpc.ForceCodec(rawCodec{}))
			require.Errorf(t, err, "%s accepted", name)
			require.Containsf(t, []codes.Code{codes.InvalidArgument, codes.Internal}, status.Code(err), "%s: %v", name, err)
			report["grpc "+name] = err.Error()
		}
	})

	t.Run("otlp-http-garbage", func(t *testing.T) {
		junk := make([]byte, 32<<10)
		_, _ = rand.Read(junk)
		var bomb bytes.Buffer // 1 GiB of zeros in about 1 MiB of gzip
		zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
		zeros := make([]byte, 1<<20)
		for range 1024 {
			_, _ = zw.Write(zeros)
		}
		require.NoError(t, zw.Close())
		for _, c := range []struct {
			name, ctype, enc string
			body             []byte
			want             []int
		}{
			{"protobuf garbage", "application/x-protobuf", "", junk, []int{400}},
			{"broken json", "application/json", "", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"`), []int{400}},
			{"json wrong types", "application/json", "", []byte(`{"resourceSpans":"yes"}`), []int{400}},
			{"unknown content type", "text/csv", "", []byte("a,b"), []int{415}},
			{"gzip bomb", "application/x-protobuf", "gzip", bomb.Bytes(), []int{400, 413}},
			{"bad gzip", "application/x-protobuf", "gzip", junk, []int{400}},
		} {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, httpURL+"/v1/traces", bytes.NewReader(c.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", c.ctype)
			if c.enc != "" {
				req.Header.Set("Content-Encoding", c.enc)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoErrorf(t, err, c.name)
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			resp.Body.Close()
			require.Containsf(t, c.want, resp.StatusCode, "%s: %s %s", c.name, resp.Status, b)
			report["http "+c.name] = resp.Status
		}
	})

	t.Run("absurd-sizes", func(t *testing.T) {
		client := ptraceotlp.NewGRPCClient(conn)
		// 3 MiB attribute value: under gRPC's 4 MiB message limit, accepted
		// and delivered whole.
		big := spanWith(func(sp ptrace.Span) { sp.Attributes().PutStr("blob", strings.Repeat("x", 3<<20)) })
		_, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(big))
		require.NoError(t, err)
		// 100,000 attributes on one span.
		many := spanWith(func(sp ptrace.Span) {
			for i := range 100_000 {
				sp.Attributes().PutInt(fmt.Sprintf("k%d", i), int64(i))
			}
		})
		_, err = client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(many))
		require.NoError(t, err)
		// 8 MiB: over the receiver's message limit, refused with a clear code.
		huge := spanWith(func(sp ptrace.Span) { sp.Attributes().PutStr("blob", strings.Repeat("y", 8<<20)) })
		_, err = client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(huge))
		require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
		report["grpc 8 MiB span"] = status.Code(err).String()
		ok := otlpsink.WaitFor(30*time.Second, func() bool {
			var blob, attrs bool
			for _, td := range sink.Traces() {
				for _, rs := range td.ResourceSpans().All() {
					for _, ss := range rs.ScopeSpans().All() {
						for _, sp := range ss.Spans().All() {
							if v, ok := sp.Attributes().Get("blob"); ok && len(v.Str()) == 3<<20 {
								blob = true
							}
							if sp.Attributes().Len() == 100_000 {
								attrs = true
							}
						}
					}
				}
			}
			return blob && attrs
		})
		require.True(t, ok, "the 3 MiB attribute and the 100,000-attribute span were accepted but did not arrive whole")
	})

	t.Run("log-files", func(t *testing.T) {
		garbage := make([]byte, 1<<20)
		_, _ = rand.Read(garbage)
		var f bytes.Buffer
		f.WriteString("before garbage\n")
		f.Write(garbage) // binary, NULs, invalid UTF-8, random newlines
		f.WriteString("\nafter garbage\n")
		f.WriteString(strings.Repeat("L", 10<<20)) // one 10 MiB line
		f.WriteString("\nafter long line\n")
		require.NoError(t, os.WriteFile(filepath.Join(logDir, "bad.log"), f.Bytes(), 0o644))
		var longBytes int
		ok := otlpsink.WaitFor(60*time.Second, func() bool {
			seen := map[string]bool{}
			longBytes = 0
			for _, ld := range sink.Logs() {
				for _, rl := range ld.ResourceLogs().All() {
					for _, sl := range rl.ScopeLogs().All() {
						for _, lr := range sl.LogRecords().All() {
							body := lr.Body().AsString()
							seen[body] = true
							if len(body) >= 1024 && strings.Trim(body, "L") == "" {
								longBytes += len(body)
							}
						}
					}
				}
			}
			return seen["before garbage"] && seen["after garbage"] && seen["after long line"] && longBytes == 10<<20
		})
		require.True(t, ok, "lines after binary garbage and a 10 MiB line must arrive, and the long line whole in 1 MiB pieces (got %d bytes of it)", longBytes)
		report["file 10 MiB line"] = fmt.Sprintf("delivered as %d pieces of at most 1 MiB", longBytes>>20)
	})

	t.Run("broken-syslog", func(t *testing.T) {
		dial := func() net.Conn {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", sysPort), 5*time.Second)
			require.NoError(t, err)
			return c
		}
		c := dial()
		bad := []string{
			"<999>1 2026-11-26T08:00:00Z host app - - - priority out of range",
			"<34>1 2026-13-45T25:61:61Z host app - - - impossible timestamp",
			"<34>1 2026-11-26T08:00:00Z host app - - [unterminated structured data",
			"<34>",
			"\x00\x01\x02\xff\xfe binary",
		}
		for _, m := range bad {
			_, err := fmt.Fprintf(c, "%s\n", m)
			require.NoError(t, err)
		}
		_, err := fmt.Fprintf(c, "<166>1 2026-11-26T08:00:01.000Z node-1 cart 77 - - parsed after broken lines\n")
		require.NoError(t, err)
		// A connection dropped mid-message.
		_, _ = c.Write([]byte("<34>1 2026-11-26T08:00:00Z host app - - - half a mess"))
		c.Close()
		// A line over max_log_size: upstream's TCP input ends that connection
		// (bufio.Scanner: token too long); what follows on it is not read.
		// The next connection is served as usual.
		c = dial()
		_, _ = fmt.Fprintf(c, "<34>1 2026-11-26T08:00:00Z host app - - - %s\n", strings.Repeat("z", 200<<10))
		_, _ = fmt.Fprintf(c, "<166>1 2026-11-26T08:00:01.000Z node-1 cart 77 - - after the oversized line\n")
		c.Close()
		c = dial()
		_, err = fmt.Fprintf(c, "<166>1 2026-11-26T08:00:01.000Z node-1 cart 77 - - on a new connection\n")
		require.NoError(t, err)
		c.Close()
		messages := func() map[string]bool {
			got := map[string]bool{}
			for _, ld := range sink.Logs() {
				for _, rl := range ld.ResourceLogs().All() {
					for _, sl := range rl.ScopeLogs().All() {
						for _, lr := range sl.LogRecords().All() {
							if m, ok := lr.Attributes().Get("message"); ok {
								got[m.Str()] = true
							}
						}
					}
				}
			}
			return got
		}
		ok := otlpsink.WaitFor(30*time.Second, func() bool {
			got := messages()
			return got["parsed after broken lines"] && got["on a new connection"]
		})
		require.True(t, ok, "good syslog lines after broken ones, and on a new connection after an oversized line, must be parsed and delivered")
		report["syslog line over max_log_size"] = fmt.Sprintf("connection closed; the line after it on that connection delivered: %v", messages()["after the oversized line"])
		require.Contains(t, a.log.String(), "expecting a priority value")
	})

	t.Run("million-series-target", func(t *testing.T) {
		var scrapes float64
		ok := otlpsink.WaitFor(60*time.Second, func() bool {
			for _, md := range sink.Metrics() {
				for _, rm := range md.ResourceMetrics().All() {
					for _, sm := range rm.ScopeMetrics().All() {
						for _, m := range sm.Metrics().All() {
							if m.Name() == "huge_cardinality" {
								t.Fatalf("a scrape over sample_limit was forwarded")
							}
							if m.Name() == "up" && m.Gauge().DataPoints().Len() > 0 {
								if v := m.Gauge().DataPoints().At(0); v.DoubleValue() == 0 {
									scrapes++
								}
							}
						}
					}
				}
			}
			return scrapes >= 2
		})
		require.True(t, ok, "the million-series target should be scraped and refused (up = 0)")
		log := a.log.String()
		require.True(t, strings.Contains(log, "sample limit exceeded") || strings.Contains(log, "body size limit exceeded"), "no reason logged for the refused scrape")
		reason := "sample limit exceeded"
		if !strings.Contains(log, reason) {
			reason = "body size limit exceeded"
		}
		report["scrape of 1,000,000 series"] = fmt.Sprintf("refused whole (%s), up=0, %.0f scrapes", reason, scrapes)
	})

	// The good stream went on through all of it, and the agent is alive.
	time.Sleep(time.Second)
	good.Stop()
	_, _, accepted, _ := good.Accepted()
	var logs counts
	ok := otlpsink.WaitFor(30*time.Second, func() bool {
		_, _, logs, _ = good.tally([]*otlpsink.Sink{sink})
		return logs.Lost == 0
	})
	require.True(t, ok, "good stream: %v", logs)
	require.Positive(t, accepted)
	select {
	case <-a.done:
		t.Fatalf("vigil exited:\n%s", tail(a.log.String(), 4000))
	default:
	}
	require.True(t, httpOK(fmt.Sprintf("http://127.0.0.1:%d/", health))())
	require.NotContains(t, a.log.String(), "panic")
	t.Logf("good stream during the bad input: %v", logs)
	for k, v := range report {
		t.Logf("%-34s %s", k, v)
	}
}

func validTraceRequest(t *testing.T) []byte {
	b, err := ptraceotlp.NewExportRequestFromTraces(spanWith(func(ptrace.Span) {})).MarshalProto()
	require.NoError(t, err)
	return b
}

func spanWith(f func(ptrace.Span)) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "hostile")
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1, 2, 3})
	sp.SetSpanID(pcommon.SpanID{4, 5, 6})
	sp.SetName("absurd")
	f(sp)
	return td
}

// bufioWriter buffers a response writer for a large streamed body.
func bufioWriter(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 64<<10) }
