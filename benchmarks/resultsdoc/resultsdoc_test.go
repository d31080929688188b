package resultsdoc

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReplace(t *testing.T) {
	p := filepath.Join(t.TempDir(), "RESULTS.md")
	require.NoError(t, Replace(p, "bench", "# Bench\nv1"))
	require.NoError(t, Replace(p, "eval", "# Eval\ne1\n"))
	require.NoError(t, Replace(p, "bench", "# Bench\nv2\n"))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "<!-- BEGIN bench -->\n# Bench\nv2\n<!-- END bench -->\n\n<!-- BEGIN eval -->\n# Eval\ne1\n<!-- END eval -->\n", string(b))
	require.NoError(t, os.WriteFile(p, []byte("<!-- BEGIN bench -->\nbroken"), 0o644))
	require.ErrorContains(t, Replace(p, "bench", "x"), "only one of its markers")
}
