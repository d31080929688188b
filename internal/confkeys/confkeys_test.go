package confkeys

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
)

type inner struct {
	Endpoint string `mapstructure:"endpoint"`
}

type outer struct {
	inner   `mapstructure:",squash"`
	Inner   inner             `mapstructure:",squash"`
	Delay   int               `mapstructure:"resend_delay"`
	Labels  map[string]string `mapstructure:"external_labels"`
	Skipped int               `mapstructure:"-"`
	Plain   int
}

func TestCheck(t *testing.T) {
	typ := reflect.TypeFor[outer]()
	ok := confmap.NewFromStringMap(map[string]any{"endpoint": "x", "resend_delay": 1, "external_labels": map[string]any{"a": "b"}, "plain": 2})
	require.NoError(t, Check(ok, typ))

	bad := confmap.NewFromStringMap(map[string]any{"endpoint": "x", "resend_dely": 1, "zzz": map[string]any{"a": 1}, "-": 1})
	require.EqualError(t, Check(bad, typ), "has invalid keys: -, resend_dely, zzz")
}
