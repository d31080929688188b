package statusextension

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLayoutColumnsFollowCallDepth(t *testing.T) {
	nodes := []string{"catalog", "catalog-db", "checkout", "frontend", "payments", "recommendation"}
	edges := [][2]string{
		{"frontend", "checkout"}, {"frontend", "catalog"}, {"frontend", "recommendation"},
		{"recommendation", "catalog"}, {"catalog", "catalog-db"}, {"checkout", "payments"},
	}
	pos, cols, rows := layout(nodes, edges)
	col := func(n string) int { return pos[n].col }
	assert.Equal(t, 0, col("frontend"))
	assert.Equal(t, 1, col("checkout"))
	assert.Equal(t, 1, col("recommendation"))
	assert.Equal(t, 2, col("catalog"), "the longest chain of calls: frontend -> recommendation -> catalog")
	assert.Equal(t, 3, col("catalog-db"))
	assert.Equal(t, 2, col("payments"))
	assert.Equal(t, 4, cols)
	assert.Equal(t, 2, rows)

	seen := map[cell]string{}
	for n, c := range pos {
		require.Empty(t, seen[c], "%s and %s share a cell", n, seen[c])
		seen[c] = n
	}
}

func TestLayoutSurvivesCycles(t *testing.T) {
	nodes := []string{"a", "b", "c", "d", "self"}
	edges := [][2]string{{"a", "b"}, {"b", "a"}, {"b", "c"}, {"d", "a"}, {"self", "self"}}
	pos, cols, _ := layout(nodes, edges)
	require.Len(t, pos, 5)
	assert.Equal(t, 0, pos["d"].col, "d calls into the cycle and nothing calls d")
	assert.Equal(t, 0, pos["self"].col)
	assert.Less(t, pos["a"].col, pos["c"].col)
	assert.Less(t, cols, 6)

	// A cycle nobody else calls still gets placed.
	pos, _, _ = layout([]string{"x", "y"}, [][2]string{{"x", "y"}, {"y", "x"}})
	assert.Equal(t, cell{0, 0}, pos["x"])
	assert.Equal(t, cell{1, 0}, pos["y"])
}

func TestLayoutIsBoundedOnLargeGraphs(t *testing.T) {
	var nodes []string
	var edges [][2]string
	for i := range 400 {
		nodes = append(nodes, fmt.Sprintf("s%03d", i))
		if i > 0 {
			edges = append(edges, [2]string{fmt.Sprintf("s%03d", i/2), fmt.Sprintf("s%03d", i)})
		}
	}
	pos, cols, rows := layout(nodes, edges)
	assert.Len(t, pos, 400)
	assert.Equal(t, 10, cols, "s000, then s001, then levels of doubling width")
	assert.Equal(t, 144, rows, "s256..s399")
}
