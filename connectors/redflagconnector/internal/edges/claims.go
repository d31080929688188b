package edges

import (
	"net/netip"
	"strings"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
)

// claimKey identifies a claim for de-duplication.
type claimKey struct {
	name, service string
	kind          detect.ClaimKind
}

// claimCache passes each distinct claim on at most once per refresh period:
// the same pod IP is stated by every span of its pod, and the engine needs
// to hear it only often enough to know it is current.
type claimCache struct {
	last map[claimKey]int64 // unix seconds last passed on
	max  int
}

// claimRefresh is how often a claim already passed on is passed on again.
const claimRefresh = 30 // seconds

func (c *claimCache) admit(k claimKey, now int64) bool {
	if t, ok := c.last[k]; ok && now-t < claimRefresh {
		return false
	}
	if len(c.last) >= c.max {
		clear(c.last) // bounded: everything is passed on once more
	}
	c.last[claimKey{strings.Clone(k.name), strings.Clone(k.service), k.kind}] = now
	return true
}

// claimable reports whether a name can stand for one service: not empty,
// not the service's own name, not a loopback or unspecified address every
// host has (127.0.0.1, ::1, 0.0.0.0, ::, localhost).
func claimable(name, service string) bool {
	if name == "" || name == service || name == "localhost" {
		return false
	}
	if a, err := netip.ParseAddr(name); err == nil {
		return !a.IsUnspecified() && a != netip.AddrFrom4([4]byte{127, 0, 0, 1}) && a != netip.IPv6Loopback()
	}
	return true
}

// batchClaims collects a batch's claims, each once, before the cache.
type batchClaims struct {
	seen map[claimKey]bool // whether claimable, so each name is parsed once a batch
	list []detect.Claim
}

func (bc *batchClaims) add(name, service string, kind detect.ClaimKind) {
	if name == "" {
		return
	}
	k := claimKey{name, service, kind}
	if _, ok := bc.seen[k]; ok {
		return
	}
	if bc.seen == nil {
		bc.seen = map[claimKey]bool{}
	}
	ok := claimable(name, service)
	bc.seen[k] = ok
	if ok {
		bc.list = append(bc.list, detect.Claim{Name: name, Service: service, Kind: kind})
	}
}
