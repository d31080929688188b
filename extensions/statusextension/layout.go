package statusextension

import (
	"cmp"
	"slices"
)

// cell is a node's place in the graph: its column (call depth) and row.
type cell struct{ col, row int }

// layout places nodes in columns by call depth, the longest chain of calls
// from a service nothing calls (the entry points) to the node, so a request
// reads left to right: frontend, then the services it calls, then theirs, then
// databases. Calls inside a cycle do not deepen it: a node only in cycles
// gets one column right of its deepest placed caller. Rows within a column are
// ordered by the mean row of the node's callers (fewer crossing lines), then
// by name. It returns each node's cell and the number of columns and rows.
func layout(nodes []string, edges [][2]string) (map[string]cell, int, int) {
	in := map[string][]string{}
	out := map[string][]string{}
	indeg := map[string]int{}
	for _, n := range nodes {
		indeg[n] = 0
	}
	for _, e := range edges {
		if e[0] == e[1] {
			continue
		}
		out[e[0]] = append(out[e[0]], e[1])
		in[e[1]] = append(in[e[1]], e[0])
		indeg[e[1]]++
	}
	depth := make(map[string]int, len(nodes))
	var queue []string
	for _, n := range nodes {
		if indeg[n] == 0 {
			queue = append(queue, n)
			depth[n] = 0
		}
	}
	slices.Sort(queue)
	// Kahn's order over the acyclic part: a node's depth is final once all
	// its callers are placed.
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, m := range out[n] {
			depth[m] = max(depth[m], depth[n]+1)
			if indeg[m]--; indeg[m] == 0 {
				queue = append(queue, m)
			}
		}
	}
	// Nodes on or behind cycles: place them after their deepest placed
	// caller, repeatedly, in name order so the result is deterministic.
	rest := []string{}
	for _, n := range nodes {
		if indeg[n] > 0 {
			rest = append(rest, n)
		}
	}
	slices.Sort(rest)
	for len(rest) > 0 {
		progressed := false
		next := rest[:0]
		for _, n := range rest {
			d, found := 0, false
			for _, c := range in[n] {
				if cd, ok := depth[c]; ok && indeg[c] == 0 {
					d, found = max(d, cd+1), true
				}
			}
			if found {
				depth[n] = d
				indeg[n] = 0
				progressed = true
			} else {
				next = append(next, n)
			}
		}
		rest = next
		if !progressed {
			// A cycle nobody outside calls: start it at column 0.
			depth[rest[0]] = 0
			indeg[rest[0]] = 0
			rest = rest[1:]
		}
	}

	cols := 0
	byCol := map[int][]string{}
	for _, n := range nodes {
		d := depth[n]
		byCol[d] = append(byCol[d], n)
		cols = max(cols, d+1)
	}
	pos := make(map[string]cell, len(nodes))
	rows := 0
	for c := range cols {
		col := byCol[c]
		key := func(n string) float64 {
			sum, k := 0.0, 0
			for _, p := range in[n] {
				if pc, ok := pos[p]; ok && pc.col < c {
					sum += float64(pc.row)
					k++
				}
			}
			if k == 0 {
				return -1
			}
			return sum / float64(k)
		}
		keys := make(map[string]float64, len(col))
		for _, n := range col {
			keys[n] = key(n)
		}
		slices.SortFunc(col, func(a, b string) int {
			return cmp.Or(cmp.Compare(keys[a], keys[b]), cmp.Compare(a, b))
		})
		for r, n := range col {
			pos[n] = cell{col: c, row: r}
		}
		rows = max(rows, len(col))
	}
	return pos, cols, rows
}
