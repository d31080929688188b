package service

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Admin endpoint paths, served on the replica's IP at topo.AdminPort without
// instrumentation (like a sidecar's or a debug port).
const (
	PathReady = "/admin/ready"
	PathPeers = "/admin/peers"
	PathFault = "/admin/fault"
	PathStats = "/admin/stats"
)

// Fault is the in-process fault state of a replica; the zero value is
// healthy. PUT it to PathFault to replace the state, DELETE to clear it.
type Fault struct {
	// ErrorShare of requests fail with INTERNAL / 500 and an error log;
	// only requests of ErrorMethod when it is set.
	ErrorShare  float64 `json:"error_share,omitempty"`
	ErrorMethod string  `json:"error_method,omitempty"`
	// DelayMS is added to every request.
	DelayMS float64 `json:"delay_ms,omitempty"`
	// LeakSeconds makes requests leak database connections so that the pool
	// is gone after about this many seconds.
	LeakSeconds float64 `json:"leak_seconds,omitempty"`
	// SpinDuty runs a goroutine that burns this share of the CPU (the
	// fallback for a CPU fault when cgroups are not writable).
	SpinDuty float64 `json:"spin_duty,omitempty"`
}

// Validate checks the fault's ranges.
func (f Fault) Validate() error {
	switch {
	case f.ErrorShare < 0 || f.ErrorShare > 1:
		return fmt.Errorf("invalid error_share %g: want 0..1", f.ErrorShare)
	case f.DelayMS < 0 || f.DelayMS > 60_000:
		return fmt.Errorf("invalid delay_ms %g: want 0..60000", f.DelayMS)
	case f.LeakSeconds < 0 || f.LeakSeconds > 3600:
		return fmt.Errorf("invalid leak_seconds %g: want 0..3600", f.LeakSeconds)
	case f.SpinDuty < 0 || f.SpinDuty > 0.95:
		return fmt.Errorf("invalid spin_duty %g: want 0..0.95", f.SpinDuty)
	}
	return nil
}

// Stats are a replica's counters since it started.
type Stats struct {
	Requests   int64 `json:"requests"`
	Failed     int64 `json:"failed"`
	Cancelled  int64 `json:"cancelled"`
	Rejected   int64 `json:"rejected"`
	Injected   int64 `json:"injected"`
	Fallbacks  int64 `json:"fallbacks"`
	Jobs       int64 `json:"jobs"`
	JobsFailed int64 `json:"jobs_failed"`
	Leaked     int64 `json:"leaked"`
	// LatencyMicros is the sum of request latencies, for a mean.
	LatencyMicros int64 `json:"latency_us"`
	// Fault is the current fault state.
	Fault Fault `json:"fault"`
}

type counters struct {
	requests, failed, cancelled, rejected, injected, fallbacks atomic.Int64
	jobs, jobsFailed, latencyMicros                            atomic.Int64
}

// faultState holds the current Fault; reads are lock-free.
type faultState struct {
	cur   atomic.Pointer[Fault]
	since atomic.Int64 // unix nanos of the last change
}

func (s *faultState) get() Fault {
	if f := s.cur.Load(); f != nil {
		return *f
	}
	return Fault{}
}

func (s *faultState) set(f Fault) {
	s.cur.Store(&f)
	s.since.Store(time.Now().UnixNano())
}

// adminHandler serves the admin endpoint. onFault runs after every change
// of the fault state, onPeers after every peers update.
type adminHandler struct {
	ready   *atomic.Bool
	faults  *faultState
	stats   func() Stats
	onFault func(Fault)
	onPeers func(map[string][]string)
	mu      sync.Mutex // serialises fault changes
}

func (a *adminHandler) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET "+PathReady, func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	m.HandleFunc("POST "+PathPeers, func(w http.ResponseWriter, r *http.Request) {
		var p map[string][]string
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err != nil {
			http.Error(w, "cannot decode peers: "+err.Error(), http.StatusBadRequest)
			return
		}
		a.onPeers(p)
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("PUT "+PathFault, func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&f); err != nil {
			http.Error(w, "cannot decode fault: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := f.Validate(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.setFault(f)
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("DELETE "+PathFault, func(w http.ResponseWriter, _ *http.Request) {
		a.setFault(Fault{})
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("GET "+PathStats, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.stats())
	})
	return m
}

func (a *adminHandler) setFault(f Fault) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults.set(f)
	a.onFault(f)
}
