package crilog

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWriterWritesRotatedCRIFiles writes for a moment with a small rotation
// size and reads back what a log agent would: CRI lines of the configured
// size with a JSON message, the kubelet's directory layout, rotated files
// beside the live one, and no more of them than configured.
func TestWriterWritesRotatedCRIFiles(t *testing.T) {
	root := t.TempDir()
	w, err := New(Config{Root: root, Pods: 2, LineBytes: 512, Rate: 20000, RotateBytes: 64 << 10, KeepRotated: 2})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	require.NoError(t, w.Run(ctx))
	require.Positive(t, w.Lines.Load())
	require.Positive(t, w.Rotations.Load())

	for _, p := range w.Paths {
		rel, err := filepath.Rel(root, p)
		require.NoError(t, err)
		parts := strings.Split(rel, string(filepath.Separator))
		require.Len(t, parts, 3, "<namespace>_<pod>_<uid>/<container>/0.log")
		require.Len(t, strings.Split(parts[0], "_"), 3)
		require.Equal(t, "0.log", parts[2])
		rotated, err := filepath.Glob(p + ".*")
		require.NoError(t, err)
		require.NotEmpty(t, rotated)
		require.LessOrEqual(t, len(rotated), 2)

		f, err := os.Open(rotated[0])
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		n := 0
		for sc.Scan() {
			line := sc.Text()
			require.Len(t, line, 511)
			fields := strings.SplitN(line, " ", 4)
			require.Len(t, fields, 4)
			_, err := time.Parse(time.RFC3339Nano, fields[0])
			require.NoError(t, err)
			require.Equal(t, "stdout", fields[1])
			require.Equal(t, "F", fields[2])
			var msg map[string]any
			require.NoError(t, json.Unmarshal([]byte(fields[3]), &msg))
			require.Contains(t, msg, "level")
			n++
		}
		f.Close()
		require.Equal(t, 64<<10/512, n)
	}
	_, err = New(Config{Root: root})
	require.Error(t, err)
}
