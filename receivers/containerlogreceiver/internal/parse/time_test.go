package parse

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTime(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "1970-01-01T00:00:00Z", want: 0},
		{in: "2024-01-15T10:30:00Z", want: ns("2024-01-15T10:30:00Z")},
		{in: "2024-01-15T10:30:00.1Z", want: ns("2024-01-15T10:30:00.1Z")},
		{in: "2024-01-15T10:30:00.123456789Z", want: ns("2024-01-15T10:30:00.123456789Z")},
		{in: "2024-01-15T10:30:00.1234567891234Z", want: ns("2024-01-15T10:30:00.123456789Z")}, // truncated, as time.Parse
		{in: "2024-01-15T12:30:00.000000001+02:00", want: ns("2024-01-15T10:30:00.000000001Z")},
		{in: "2024-01-15T00:00:00-23:59", want: ns("2024-01-15T23:59:00Z")},
		{in: "2024-02-29T00:00:00Z", want: ns("2024-02-29T00:00:00Z")},
		{in: "2000-02-29T00:00:00Z", want: ns("2000-02-29T00:00:00Z")},
		{in: "1969-12-31T23:59:59.5Z", want: -500_000_000},
		{in: "1677-09-21T00:12:43.145224192Z", want: -9223372036854775808},
		{in: "2262-04-11T23:47:16.854775807Z", want: 9223372036854775807},
		{in: "", wantErr: `cannot parse time "": too short for RFC 3339 at byte 0`},
		{in: "2024-01-15", wantErr: "too short"},
		{in: "2024-01-15 10:30:00Z", wantErr: "expecting 'T' at byte 10"},
		{in: "2024-01-15t10:30:00Z", wantErr: "expecting 'T' at byte 10"},
		{in: "2024/01/15T10:30:00Z", wantErr: "expecting '-' at byte 4"},
		{in: "20x4-01-15T10:30:00Z", wantErr: "bad year at byte 0"},
		{in: "2023-02-29T10:30:00Z", wantErr: "bad day at byte 8"},
		{in: "2024-04-31T10:30:00Z", wantErr: "bad day at byte 8"},
		{in: "2024-01-00T10:30:00Z", wantErr: "bad day at byte 8"},
		{in: "2024-01-15T24:00:00Z", wantErr: "bad hour at byte 11"},
		{in: "2024-01-15T10:60:00Z", wantErr: "bad minute at byte 14"},
		{in: "2024-01-15T10:30:60Z", wantErr: "bad second at byte 17"},
		{in: "2024-01-15T10:30:00.Z", wantErr: "expecting 'Z' or an offset like +01:00 at byte 19"},
		{in: "2024-01-15T10:30:00,5Z", wantErr: "expecting 'Z' or an offset like +01:00 at byte 19"}, // time.Parse takes it
		{in: "2024-01-15T1:30:00Z", wantErr: "expecting ':' at byte 13"},                             // time.Parse takes it
		{in: "2024-01-15T10:30:00", wantErr: "expecting 'Z' or an offset like +01:00 at byte 19"},
		{in: "2024-01-15T10:30:00z", wantErr: "expecting 'Z'"},
		{in: "2024-01-15T10:30:00+0100", wantErr: "expecting 'Z'"},
		{in: "2024-01-15T10:30:00+24:00", wantErr: "bad offset at byte 19"},
		{in: "2024-01-15T10:30:00+01:60", wantErr: "bad offset at byte 19"},
		{in: "2024-01-15T10:30:00ZZ", wantErr: "expecting 'Z'"},
		{in: "1677-09-21T00:12:43.145224191Z", wantErr: "out of the range of int64 nanoseconds"},
		{in: "2262-04-11T23:47:16.854775808Z", wantErr: "out of the range of int64 nanoseconds"},
		{in: "0001-01-01T00:00:00Z", wantErr: "out of the range"},
		{in: "9999-12-31T23:59:59Z", wantErr: "out of the range"},
		{in: "2024-01-15T10:30:00.123456789Z" + string(repeat('x', 200)), wantErr: `"...: expecting`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTime([]byte(tt.in))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Less(t, len(err.Error()), 150)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestDaysFromCivil(t *testing.T) {
	// Against the time package at every 1st of March and 28th of February,
	// across the whole four-digit range.
	for y := 0; y <= 9999; y++ {
		for _, md := range [][2]int{{1, 1}, {2, 28}, {3, 1}, {12, 31}} {
			s := []byte("0000-00-00T00:00:00Z")
			copy(s, []byte{byte('0' + y/1000), byte('0' + y/100%10), byte('0' + y/10%10), byte('0' + y%10)})
			s[5], s[6] = byte('0'+md[0]/10), byte('0'+md[0]%10)
			s[8], s[9] = byte('0'+md[1]/10), byte('0'+md[1]%10)
			want := mustTime(t, string(s)).Unix() / 86400
			if mustTime(t, string(s)).Unix() < 0 && mustTime(t, string(s)).Unix()%86400 != 0 {
				want--
			}
			require.Equal(t, want, daysFromCivil(y, md[0], md[1]), "%s", s)
		}
	}
}
