package prometheusremotewriteexporter

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	prw "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusremotewriteexporter"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
)

// Config is upstream's configuration, key for key (the same YAML runs
// unchanged; its defaults and checks are upstream's), plus the collector's
// persistent-capable sending_queue. Upstream's write-ahead log (wal) is
// refused: sending_queue with storage is what keeps data across restarts
// here.
type Config struct {
	prw.Config `mapstructure:",squash"`

	// SendingQueue is the collector's sending queue (exporterhelper), with
	// storage for a queue that survives restarts and crashes. When set it
	// replaces remote_write_queue. Requests are always taken off it one at a
	// time, in order (num_consumers is how many batches of one request are
	// sent in parallel), so a series' samples never overtake each other.
	SendingQueue configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
}

// errWAL explains why wal is refused and what to use instead.
var errWAL = errors.New("wal: Vigil's prometheus_remote_write exporter has no write-ahead log; " +
	"use `sending_queue: {storage: file_storage}` (a file_storage extension) to keep what was accepted across restarts and crashes")

// Unmarshal checks every key against the configuration's fields (upstream's
// exporter ignores keys it does not know: a sending_queue or a
// retry_on_failure typo given to it did nothing), then leaves upstream's keys
// to upstream's unmarshalling (its deprecated top-level HTTP keys and
// feature gates included) and takes sending_queue.
func (c *Config) Unmarshal(conf *confmap.Conf) error {
	var unknown []string
	for _, k := range conf.AllKeys() {
		if !validKey(reflect.TypeFor[Config](), strings.Split(k, confmap.KeyDelimiter)) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("unknown keys: %s (the keys are upstream's, plus sending_queue)", strings.Join(unknown, ", "))
	}
	if conf.IsSet("sending_queue::batch") {
		// A batching consumer takes requests off the queue while one is
		// being sent: order, and what a restart sends first, are lost.
		return errors.New("sending_queue::batch: not supported by prometheus_remote_write, which sends requests one at a time, in order; batch in the pipeline (the batch processor) instead")
	}
	// Upstream's Unmarshal, forced (the Conf an Unmarshal method is given
	// skips the top-level one; called directly it decodes nothing). It
	// ignores sending_queue.
	if err := conf.Unmarshal(&c.Config, confmap.WithForceUnmarshaler()); err != nil {
		return err
	}
	if !conf.IsSet("sending_queue") {
		return nil
	}
	w := struct {
		Queue configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	}{Queue: c.SendingQueue}
	if err := conf.Unmarshal(&w, confmap.WithIgnoreUnused()); err != nil {
		return err
	}
	c.SendingQueue = w.Queue
	return nil
}

// Validate checks what Vigil adds to upstream's configuration (upstream's
// own Validate runs too).
func (c *Config) Validate() error {
	if c.v2() {
		if c.SendingQueue.HasValue() {
			return fmt.Errorf("sending_queue: not available with protobuf_message %q, which still runs upstream's exporter (remote_write_queue and wal apply)", c.RemoteWriteProtoMsg)
		}
		return nil
	}
	if c.WAL.HasValue() {
		return errWAL
	}
	return nil
}

// v2 reports whether remote write 2.0 is configured: upstream's exporter
// still sends it.
func (c *Config) v2() bool { return c.RemoteWriteProtoMsg == remoteapi.WriteV2MessageType }

// validKey reports whether path (a key split at "::") names a field of t
// by its mapstructure tags, through squashed structs, pointers and
// configoptional.Optional (which also takes "enabled"). Maps, slices and
// interfaces take any key below them.
func validKey(t reflect.Type, path []string) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if len(path) == 0 {
		return true
	}
	switch t.Kind() {
	case reflect.Map, reflect.Slice, reflect.Interface:
		return true
	case reflect.Struct:
	default:
		return false
	}
	if t.PkgPath() == "go.opentelemetry.io/collector/config/configoptional" && strings.HasPrefix(t.Name(), "Optional[") {
		if path[0] == "enabled" && len(path) == 1 {
			return true
		}
		get, ok := reflect.PointerTo(t).MethodByName("Get")
		if !ok || get.Type.NumOut() != 1 {
			return true
		}
		return validKey(get.Type.Out(0), path)
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		switch {
		case strings.Contains(opts, "squash"):
			if validKey(f.Type, path) {
				return true
			}
		case name == "-":
		case name == path[0] || (name == "" && strings.EqualFold(f.Name, path[0])):
			return validKey(f.Type, path[1:])
		}
	}
	return false
}
