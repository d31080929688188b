package alertmanagerexporter

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode"
)

// maxReasonBytes bounds the part of an Alertmanager's answer quoted in an error.
const maxReasonBytes = 256

// checkResponse turns an Alertmanager's answer to POST /api/v2/alerts into
// nil for any 2xx, or an error with the status and the reason it gave.
// Alertmanager answers errors as a JSON string ("invalid label set: ...") or,
// from its API validation, a JSON object with a message; proxies in front of
// it answer HTML or plain text. The reason is cut to maxReasonBytes and
// stripped of control characters, so an answer cannot flood or forge log lines.
func checkResponse(status int, body []byte) error {
	if status >= 200 && status < 300 {
		return nil
	}
	reason := responseReason(body)
	text := http.StatusText(status)
	if text == "" {
		text = "unknown status"
	}
	if reason == "" {
		return fmt.Errorf("alertmanager answered %d %s", status, text)
	}
	return fmt.Errorf("alertmanager answered %d %s: %s", status, text, reason)
}

// responseReason extracts a one-line, bounded reason from an error answer.
func responseReason(body []byte) string {
	raw := strings.TrimSpace(string(body[:min(len(body), 4*maxReasonBytes)]))
	if raw == "" {
		return ""
	}
	var s string
	var obj struct {
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	switch {
	case json.Unmarshal(body, &s) == nil:
		raw = s
	case json.Unmarshal(body, &obj) == nil && (obj.Message != "" || obj.Error != ""):
		raw = obj.Message
		if raw == "" {
			raw = obj.Error
		}
	}
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(raw, "\uFFFD") {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			if b.Len()+1 > maxReasonBytes {
				break
			}
			b.WriteByte(' ')
			space = false
		}
		if b.Len()+len(string(r)) > maxReasonBytes {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
