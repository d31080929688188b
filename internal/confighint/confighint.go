// Package confighint points a configuration error at the line it is about.
// The collector's errors name a key path ('processors' ... "batch" ...
// 'timeout'); Hints follows that path through the YAML files given with
// --config and reports file:line, the key and the value written there.
package confighint

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var (
	tokenRe   = regexp.MustCompile(`'([^']*)'|"([^"]*)"|([A-Za-z0-9_\-/\[\]]+(?:::[A-Za-z0-9_\-/\[\]]+)+)`)
	invalidRe = regexp.MustCompile(`has invalid keys: ([^\n]+)`)
	indexRe   = regexp.MustCompile(`^([^\[\]]*)\[(\d+)\]$`)
	goTypeRe  = regexp.MustCompile(`^[a-z0-9_]+\.[A-Z]`)
)

// Files returns the config files named on a vigil command line (--config X,
// --config=X; file: prefixes stripped; other schemes skipped).
func Files(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		var v string
		switch {
		case a == "--config" || a == "-config":
			if i+1 < len(args) {
				v = args[i+1]
				i++
			}
		case strings.HasPrefix(a, "--config="):
			v = strings.TrimPrefix(a, "--config=")
		default:
			continue
		}
		v = strings.TrimPrefix(v, "file:")
		if scheme, _, ok := strings.Cut(v, ":"); ok && !strings.ContainsAny(scheme, "/.\\") && len(scheme) > 1 {
			continue // env:, yaml:, vigil:, http: ...
		}
		out = append(out, v)
	}
	return out
}

// Hints returns "file:line:col: key: value" lines for the keys an error
// message names, found by following its key path through the files.
func Hints(msg string, files []string) []string {
	var path []string
	for _, m := range tokenRe.FindAllStringSubmatch(msg, -1) {
		tok := m[1] + m[2] + m[3]
		if tok == "" || goTypeRe.MatchString(tok) || strings.ContainsAny(tok, " ") {
			continue
		}
		for _, part := range strings.Split(tok, "::") {
			path = append(path, strings.Split(part, ".")...)
		}
	}
	var invalid []string
	if m := invalidRe.FindStringSubmatch(msg); m != nil {
		for _, k := range strings.Split(m[1], ",") {
			if k = strings.TrimSpace(k); k != "" {
				invalid = append(invalid, k)
			}
		}
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var doc yaml.Node
		if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
			continue
		}
		node, key, depth := walk(doc.Content[0], path)
		if depth == 0 {
			continue
		}
		found := false
		for _, k := range invalid {
			if kn, vn := child(node, k); kn != nil {
				out = append(out, fmt.Sprintf("%s:%d:%d: %s: %s", f, kn.Line, kn.Column, k, summary(vn)))
				found = true
			}
		}
		if !found && key != nil {
			out = append(out, fmt.Sprintf("%s:%d:%d: %s: %s", f, key.Line, key.Column, key.Value, summary(node)))
		}
	}
	return out
}

// walk follows as much of path as the document has, skipping tokens that
// name nothing at the current level (words of the message, type names).
func walk(n *yaml.Node, path []string) (node, key *yaml.Node, depth int) {
	node = n
	for _, p := range path {
		name, idx := p, -1
		if m := indexRe.FindStringSubmatch(p); m != nil {
			name = m[1]
			idx, _ = strconv.Atoi(m[2])
		}
		kn, vn := child(node, name)
		if kn == nil {
			continue
		}
		if idx >= 0 {
			if vn.Kind != yaml.SequenceNode || idx >= len(vn.Content) {
				continue
			}
			vn = vn.Content[idx]
		}
		node, key = vn, kn
		depth++
	}
	return node, key, depth
}

// child finds key k in a mapping node (aliases followed).
func child(n *yaml.Node, k string) (*yaml.Node, *yaml.Node) {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == k {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}

func summary(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case yaml.MappingNode:
		return "{...}"
	case yaml.SequenceNode:
		return "[...]"
	}
	return ""
}
