// Command vulnsummary reads govulncheck's JSON output (-format json) on
// standard input, prints one line per vulnerability the code calls, and
// exits 1 if one of them is in a module Vigil can upgrade. Findings in the
// standard library are printed with the Go release that fixes them but fail
// only with -strict: the toolchain is upgraded with Go itself, not with
// go.mod. Findings in code that is imported but not called are counted.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Function string `json:"function"`
}

type message struct {
	Finding *struct {
		OSV          string  `json:"osv"`
		FixedVersion string  `json:"fixed_version"`
		Trace        []frame `json:"trace"`
	} `json:"finding"`
}

func main() {
	strict := flag.Bool("strict", false, "fail on standard-library findings too")
	flag.Parse()
	called := map[string]string{} // osv -> line
	failing := map[string]bool{}
	notCalled := map[string]bool{}
	dec := json.NewDecoder(os.Stdin)
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vulnsummary: cannot read govulncheck output:", err)
			os.Exit(2)
		}
		f := m.Finding
		if f == nil || len(f.Trace) == 0 {
			continue
		}
		top := f.Trace[0]
		if top.Function == "" {
			notCalled[f.OSV] = true
			continue
		}
		called[f.OSV] = fmt.Sprintf("%s  %s@%s, fixed in %s (%s.%s)", f.OSV, top.Module, top.Version, f.FixedVersion, top.Package, top.Function)
		if top.Module != "stdlib" || *strict {
			failing[f.OSV] = true
		}
	}
	for id := range called {
		delete(notCalled, id)
	}
	ids := make([]string, 0, len(called))
	for id := range called {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		mark := "stdlib (upgrade Go)"
		if failing[id] {
			mark = "FAIL"
		}
		fmt.Printf("%-20s %s\n", mark, called[id])
	}
	fmt.Printf("govulncheck: %d vulnerabilities called (%d failing), %d more in imported or required code that is not called\n", len(called), len(failing), len(notCalled))
	if len(failing) > 0 {
		os.Exit(1)
	}
}
