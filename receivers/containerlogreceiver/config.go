package containerlogreceiver

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configretry"
)

// Config is the container_log receiver's configuration.
type Config struct {
	// Include are the globs of the files to read. The default is the
	// kubelet's layout: /var/log/pods/<namespace>_<pod>_<uid>/<container>/
	// <restart>.log, and its rotated <restart>.log.<timestamp> files (not
	// the compressed .gz ones), so that a file rotated while it was not
	// read to its end is still found.
	Include []string `mapstructure:"include"`
	// Exclude are globs of files not to read (matched against the same
	// paths); .gz files are never read.
	Exclude []string `mapstructure:"exclude"`
	// StartAt is where files found at the first poll start when they have
	// no checkpoint: beginning or end. Files found later always start at
	// their beginning (they are new); checkpointed ones at their offset.
	StartAt string `mapstructure:"start_at"`
	// PollInterval is how often the include globs are listed and files
	// read.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// Storage is a storage extension (file_storage) where offsets are kept
	// across restarts. Without it a restart starts over from start_at.
	Storage *component.ID `mapstructure:"storage"`
	// MaxLogSize caps one record (partial lines merged, multi-line joined);
	// a longer one is cut into pieces of this size, none dropped.
	MaxLogSize ByteSize `mapstructure:"max_log_size"`
	// MaxOpenFiles caps the files held open at once: to open another, the
	// ones read to their end are closed, idle longest first (and reopened
	// when they grow); a file with no room waits for a later poll.
	MaxOpenFiles int `mapstructure:"max_open_files"`
	// ReadBufferSize is the size of one read from a file.
	ReadBufferSize ByteSize `mapstructure:"read_buffer_size"`
	// BatchSize is the bytes of records sent to the pipeline at once: a
	// batch goes once it holds this much (it may pass it by one read), or
	// at the end of a poll.
	BatchSize ByteSize `mapstructure:"batch_size"`
	// JSON parses each record's body as a JSON object, into attributes.
	JSON JSONConfig `mapstructure:"json"`
	// Multiline joins continuation lines (stack traces) into one record.
	Multiline MultilineConfig `mapstructure:"multiline"`
	// RetryOnFailure: a batch the pipeline refuses is sent again with this
	// backoff; offsets move only once it is taken. max_elapsed_time 0
	// retries until shutdown.
	RetryOnFailure configretry.BackOffConfig `mapstructure:"retry_on_failure"`
}

// JSONConfig turns JSON bodies into attributes.
type JSONConfig struct {
	Enabled bool `mapstructure:"enabled"`
	// SeverityKeys, MessageKeys and TimeKeys name the top-level keys that
	// set the record's severity, body and timestamp (the first present).
	SeverityKeys []string `mapstructure:"severity_keys"`
	MessageKeys  []string `mapstructure:"message_keys"`
	TimeKeys     []string `mapstructure:"time_keys"`
}

// MultilineConfig joins the lines of one record.
type MultilineConfig struct {
	// LineStartPattern is a regular expression matching the first line of
	// a record; other lines are continuations. Empty: off.
	LineStartPattern string `mapstructure:"line_start_pattern"`
	// MaxLines caps the lines of one record.
	MaxLines int `mapstructure:"max_lines"`
	// FlushAfter sends a pending record once its file has had no new line
	// for this long.
	FlushAfter time.Duration `mapstructure:"flush_after"`
}

var _ component.Config = (*Config)(nil)

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Include) == 0 {
		errs = append(errs, errors.New("include: at least one glob is needed"))
	}
	for i, g := range append(append([]string{}, c.Include...), c.Exclude...) {
		if _, err := filepath.Match(g, ""); err != nil {
			key := "include"
			idx := i
			if i >= len(c.Include) {
				key, idx = "exclude", i-len(c.Include)
			}
			errs = append(errs, fmt.Errorf("%s[%d]: %q is not a valid glob: %w", key, idx, g, err))
		}
	}
	if c.StartAt != "beginning" && c.StartAt != "end" {
		errs = append(errs, fmt.Errorf("start_at: %q is neither beginning nor end", c.StartAt))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, fmt.Errorf("poll_interval: %s must be positive", c.PollInterval))
	}
	if c.MaxLogSize < 1<<10 {
		errs = append(errs, fmt.Errorf("max_log_size: %d bytes is below the minimum of 1KiB", c.MaxLogSize))
	}
	if c.MaxOpenFiles < 1 {
		errs = append(errs, fmt.Errorf("max_open_files: %d must be at least 1", c.MaxOpenFiles))
	}
	if c.ReadBufferSize < 4<<10 {
		errs = append(errs, fmt.Errorf("read_buffer_size: %d bytes is below the minimum of 4KiB", c.ReadBufferSize))
	}
	if c.BatchSize < c.MaxLogSize {
		errs = append(errs, fmt.Errorf("batch_size: %d bytes must be at least max_log_size (%d)", c.BatchSize, c.MaxLogSize))
	}
	if c.Multiline.LineStartPattern != "" {
		if _, err := regexp.Compile(c.Multiline.LineStartPattern); err != nil {
			errs = append(errs, fmt.Errorf("multiline.line_start_pattern: %w", err))
		}
		if c.Multiline.MaxLines < 1 {
			errs = append(errs, fmt.Errorf("multiline.max_lines: %d must be at least 1", c.Multiline.MaxLines))
		}
		if c.Multiline.FlushAfter <= 0 {
			errs = append(errs, fmt.Errorf("multiline.flush_after: %s must be positive", c.Multiline.FlushAfter))
		}
	}
	if err := c.RetryOnFailure.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("retry_on_failure: %w", err))
	}
	return errors.Join(errs...)
}

// ByteSize is a size in bytes, written as a number or with a unit: 64KiB,
// 1MiB, 1GiB (also KB, MB, GB as powers of 1000).
type ByteSize int64

// UnmarshalText parses a size with an optional unit.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' && r != '-' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	mult, ok := map[string]float64{
		"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
		"KB": 1e3, "kB": 1e3, "MB": 1e6, "GB": 1e9,
	}[unit]
	if !ok {
		return fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB, KB, MB or GB)", s, unit)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return fmt.Errorf("size %q: %q is not a non-negative number", s, num)
	}
	*b = ByteSize(v * mult)
	return nil
}
