// Package confkeys finds misspelt top-level keys in a component's config.
//
// A config struct that squash-embeds confighttp.ClientConfig or ServerConfig
// needs an Unmarshal of its own: the embedded type's Unmarshal would
// otherwise be promoted and decode only the HTTP settings, and it decodes
// with unused keys ignored, so `resend_dely: 1m` would pass silently. Such an
// Unmarshal calls Check first, then conf.Unmarshal.
package confkeys

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/confmap"
)

// Check returns an error naming every top-level key of conf that is not a
// mapstructure key of the struct type t (squashed fields included).
func Check(conf *confmap.Conf, t reflect.Type) error {
	known := map[string]bool{}
	collect(t, known)
	var unknown []string
	for _, k := range conf.AllKeys() {
		top, _, _ := strings.Cut(k, confmap.KeyDelimiter)
		if !known[top] && !slices.Contains(unknown, top) {
			unknown = append(unknown, top)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("has invalid keys: %s", strings.Join(unknown, ", "))
	}
	return nil
}

// collect gathers the mapstructure keys of t, descending into squashed fields.
func collect(t reflect.Type, into map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if slices.Contains(strings.Split(opts, ","), "squash") && f.Type.Kind() == reflect.Struct {
			collect(f.Type, into)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name != "-" {
			into[name] = true
		}
	}
}
