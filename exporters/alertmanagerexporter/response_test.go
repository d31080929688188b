package alertmanagerexporter

import (
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

func TestCheckResponse(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		want   string // "" for success
	}{
		{200, "", ""},
		{200, "garbage", ""},
		{204, "", ""},
		// Alertmanager's own refusals: a JSON string, or its API validation's object.
		{400, `"invalid label set: invalid name \"k8s.pod\""` + "\n", `alertmanager answered 400 Bad Request: invalid label set: invalid name "k8s.pod"`},
		{422, `{"code":602,"message":"labels in body is required"}`, "alertmanager answered 422 Unprocessable Entity: labels in body is required"},
		{500, `{"error":"storage full"}`, "alertmanager answered 500 Internal Server Error: storage full"},
		// A proxy in front of it.
		{502, "<html>\n<body>Bad\tGateway</body>\n</html>", "alertmanager answered 502 Bad Gateway: <html> <body>Bad Gateway</body> </html>"},
		{503, "", "alertmanager answered 503 Service Unavailable"},
		{599, "x", "alertmanager answered 599 unknown status: x"},
		{401, "\x1b[31mforged\nlog line\x00", "alertmanager answered 401 Unauthorized: [31mforged log line"},
	} {
		err := checkResponse(c.status, []byte(c.body))
		if c.want == "" {
			assert.NoError(t, err, "%d %q", c.status, c.body)
			continue
		}
		assert.EqualError(t, err, c.want, "%d %q", c.status, c.body)
	}
	long := checkResponse(500, []byte(`"`+strings.Repeat("é", 1000)+`"`))
	assert.LessOrEqual(t, len(long.Error()), len("alertmanager answered 500 Internal Server Error: ")+maxReasonBytes)
}

// FuzzCheckResponse: whatever an Alertmanager (or whatever answers in its
// place) sends back, the exporter neither panics nor logs more than a bounded,
// single, printable line, and any 2xx counts as delivered.
func FuzzCheckResponse(f *testing.F) {
	f.Add(200, []byte(""))
	f.Add(400, []byte(`"invalid label set: invalid name \"bad-name\""`))
	f.Add(400, []byte(`{"code":602,"message":"labels in body is required"}`))
	f.Add(500, []byte(`{"error":"x","message":""}`))
	f.Add(502, []byte("<html><body>bad gateway</body></html>"))
	f.Add(503, []byte("\xff\xfe\x00\x1b[2J"))
	f.Add(-1, []byte(`"`+strings.Repeat("a", 5000)+`"`))
	f.Add(1000, []byte(`{"message":"`+strings.Repeat("\\n", 300)+`"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		err := checkResponse(status, body)
		if status >= 200 && status < 300 {
			if err != nil {
				t.Fatalf("%d refused: %v", status, err)
			}
			return
		}
		if err == nil {
			t.Fatalf("%d accepted", status)
		}
		msg := err.Error()
		if !strings.Contains(msg, strconv.Itoa(status)) {
			t.Fatalf("message %q does not name the status %d", msg, status)
		}
		if !utf8.ValidString(msg) {
			t.Fatalf("message is not UTF-8: %q", msg)
		}
		for _, r := range msg {
			if unicode.IsControl(r) {
				t.Fatalf("control character %q in %q", r, msg)
			}
		}
		if len(msg) > 100+maxReasonBytes {
			t.Fatalf("message of %d bytes", len(msg))
		}
	})
}
