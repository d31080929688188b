package alertmanagerexporter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// resolver looks names up. *net.Resolver implements it; tests pass a fake.
type resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
}

var _ resolver = (*net.Resolver)(nil)

// errNoAddress is a lookup that succeeded with nothing to send to.
var errNoAddress = errors.New("no address")

// address is one place a dns+ or dnssrv+ name resolved to.
type address struct {
	hostPort   string // IP:port, dialled
	serverName string // the name TLS verifies: the URL's host, or the SRV record's target
}

// dnsName is a dns+ or dnssrv+ URL of endpoint or endpoints. Its own
// goroutine (refreshLoop) looks the name up every dns_refresh_interval and
// publishes each new address set whole, so the sender reads one without a
// lock; a failed lookup publishes nothing and the last set stays.
type dnsName struct {
	kind lookup
	host string // the name looked up, as written
	port string // the URL's port; "" for dnssrv+ without one
	base url.URL
	name string // the configured URL without credentials: logs and metrics

	addrs atomic.Pointer[[]address] // nil until a lookup succeeds
	first chan struct{}             // closed once the first lookup has ended, however

	log flapLog // refreshLoop only
}

func newDNSName(kind lookup, u *url.URL, name string) *dnsName {
	base := *u
	return &dnsName{kind: kind, host: u.Hostname(), port: u.Port(), base: base, name: name, first: make(chan struct{})}
}

// current returns the last address set found; the caller must not modify it.
func (d *dnsName) current() []address {
	if p := d.addrs.Load(); p != nil {
		return *p
	}
	return nil
}

// resolve looks the name up once: A/AAAA for dns+, SRV then A/AAAA of each
// target for dnssrv+ (Thanos does the same). It fails as a whole when any
// lookup fails, so a partial answer never shrinks the set. The result is
// sorted by address and has no address twice.
func (d *dnsName) resolve(ctx context.Context, r resolver) ([]address, error) {
	var out []address
	ips := func(host, port string) error {
		found, err := r.LookupIPAddr(ctx, host)
		if err != nil {
			return err
		}
		for _, ip := range found {
			out = append(out, address{hostPort: net.JoinHostPort(ip.String(), port), serverName: strings.TrimSuffix(host, ".")})
		}
		return nil
	}
	switch d.kind {
	case lookupA:
		if err := ips(d.host, d.port); err != nil {
			return nil, err
		}
	case lookupSRV:
		_, recs, err := r.LookupSRV(ctx, "", "", d.host)
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			port := d.port
			if port == "" {
				port = strconv.Itoa(int(rec.Port))
			}
			if err := ips(rec.Target, port); err != nil {
				return nil, fmt.Errorf("SRV target %s: %w", rec.Target, err)
			}
		}
	default:
		return nil, fmt.Errorf("unknown lookup %q", d.kind)
	}
	if len(out) == 0 {
		return nil, errNoAddress
	}
	slices.SortFunc(out, func(a, b address) int { return cmp.Compare(a.hostPort, b.hostPort) })
	return slices.CompactFunc(out, func(a, b address) bool { return a.hostPort == b.hostPort }), nil
}

// refreshLoop looks the name of dst up at once and then every
// dns_refresh_interval until stop, each lookup bounded by timeout; ctx is
// cancelled at shutdown.
func (e *amExporter) refreshLoop(ctx context.Context, dst *destination) {
	defer e.done.Done()
	ticker := time.NewTicker(e.cfg.DNSRefreshInterval)
	defer ticker.Stop()
	first := true
	for {
		e.refresh(ctx, dst)
		if first {
			close(dst.dns.first)
			first = false
		}
		select {
		case <-e.stop:
			return
		case <-ticker.C:
		}
	}
}

// refresh looks the name up once and publishes a new address set, or counts
// and logs the failure and keeps the last one.
func (e *amExporter) refresh(ctx context.Context, dst *destination) {
	d := dst.dns
	lctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	addrs, err := d.resolve(lctx, e.resolver)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: not a failure of the name
	}
	if err != nil {
		e.tel.ExporterAlertmanagerDNSFailures.Add(context.Background(), 1, dst.attrs)
		if d.log.fail(time.Now()) {
			e.logger.Warn("cannot look up Alertmanager addresses; the last ones found are kept (logged at most once a minute; see otelcol_exporter_alertmanager_dns_failures)",
				zap.String("alertmanager", d.name), zap.Int("kept", len(d.current())), zap.Error(err))
		}
		return
	}
	if d.log.ok() {
		e.logger.Info("Alertmanager addresses are found again", zap.String("alertmanager", d.name))
	}
	if old := d.current(); !slices.Equal(old, addrs) {
		d.addrs.Store(&addrs)
		e.logger.Info("Alertmanager addresses changed", zap.String("alertmanager", d.name),
			zap.Strings("addresses", hostPorts(addrs)), zap.Int("before", len(old)))
	}
}

func hostPorts(addrs []address) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.hostPort
	}
	return out
}

// flapLog rate-limits the log of a condition that fails repeatedly: the
// first failure, then at most one a minute, and the recovery once. Not safe
// for concurrent use: one goroutine owns each.
type flapLog struct {
	failing bool
	last    time.Time
}

// fail records a failure at now and reports whether to log it.
func (f *flapLog) fail(now time.Time) bool {
	logIt := !f.failing || now.Sub(f.last) >= time.Minute
	if logIt {
		f.last = now
	}
	f.failing = true
	return logIt
}

// ok records a success and reports whether it ends a failure.
func (f *flapLog) ok() bool {
	was := f.failing
	f.failing = false
	return was
}
