// Package resultsdoc keeps benchmarks/RESULTS.md as sections that different
// tools own: `make bench` writes the side-by-side section, `make
// eval-redflags` the detector evaluation; each replaces only its own.
package resultsdoc

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Replace puts content between the markers of section name in the file at
// path, replacing what was there, or appending the section if it is new.
func Replace(path, name, content string) error {
	begin, end := fmt.Sprintf("<!-- BEGIN %s -->\n", name), fmt.Sprintf("<!-- END %s -->\n", name)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	doc := string(b)
	if !strings.HasSuffix(content, "\n") {
		content += "\n"
	}
	section := begin + content + end
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	switch {
	case i >= 0 && j > i:
		doc = doc[:i] + section + doc[j+len(end):]
	case i >= 0 || j >= 0:
		return fmt.Errorf("%s: section %q has only one of its markers; fix it by hand", path, name)
	default:
		if doc != "" && !strings.HasSuffix(doc, "\n\n") {
			doc = strings.TrimRight(doc, "\n") + "\n\n"
		}
		doc += section
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
