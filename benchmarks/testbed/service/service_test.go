package service

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func TestServiceConfig(t *testing.T) {
	sc, err := serviceConfig([]map[string]string{{"service": "ledger.v1.Rates", "method": "Quote"}})
	require.NoError(t, err)
	assert.Contains(t, sc, `"retryableStatusCodes":["UNAVAILABLE"]`)
	assert.Contains(t, sc, `"round_robin"`)
	conn, err := grpc.NewClient("testbed:///rates", grpc.WithResolvers(resolverBuilder{p: newPeers(nil)}),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(sc))
	require.NoError(t, err, "gRPC accepts the service config")
	require.NoError(t, conn.Close())
}

func TestStatusMapping(t *testing.T) {
	for _, c := range []codes.Code{codes.InvalidArgument, codes.NotFound, codes.DeadlineExceeded, codes.Unavailable, codes.Internal, codes.Canceled} {
		assert.Equal(t, c, codeFromHTTP(httpStatus(status.Error(c, "x"))), c.String())
	}
	assert.Equal(t, http.StatusOK, httpStatus(nil))
	assert.Equal(t, codes.DeadlineExceeded, codeFromErr(context.DeadlineExceeded))
	assert.Equal(t, codes.Unavailable, codeFromErr(&net.OpError{Op: "dial"}))
}

func TestFaultValidate(t *testing.T) {
	assert.NoError(t, Fault{ErrorShare: 0.5, DelayMS: 300}.Validate())
	assert.Error(t, Fault{ErrorShare: 1.5}.Validate())
	assert.Error(t, Fault{DelayMS: -1}.Validate())
	assert.Error(t, Fault{SpinDuty: 1}.Validate())
}

func TestAdmin(t *testing.T) {
	var ready atomic.Bool
	var fs faultState
	var applied []Fault
	var peers map[string][]string
	a := &adminHandler{ready: &ready, faults: &fs, stats: func() Stats { return Stats{Requests: 3, Fault: fs.get()} },
		onFault: func(f Fault) { applied = append(applied, f) }, onPeers: func(p map[string][]string) { peers = p }}
	srv := httptest.NewServer(a.mux())
	defer srv.Close()
	do := func(method, path, body string) int {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusServiceUnavailable, do(http.MethodGet, PathReady, ""))
	ready.Store(true)
	assert.Equal(t, http.StatusOK, do(http.MethodGet, PathReady, ""))
	assert.Equal(t, http.StatusNoContent, do(http.MethodPut, PathFault, `{"error_share":0.4,"error_method":"Level"}`))
	assert.Equal(t, Fault{ErrorShare: 0.4, ErrorMethod: "Level"}, fs.get())
	assert.Equal(t, http.StatusBadRequest, do(http.MethodPut, PathFault, `{"error_share":4}`))
	assert.Equal(t, http.StatusNoContent, do(http.MethodDelete, PathFault, ""))
	assert.Equal(t, Fault{}, fs.get())
	assert.Len(t, applied, 2)
	assert.Equal(t, http.StatusNoContent, do(http.MethodPost, PathPeers, `{"fx":["127.0.0.9"]}`))
	assert.Equal(t, map[string][]string{"fx": {"127.0.0.9"}}, peers)
}

func TestPeersAndDialer(t *testing.T) {
	p := newPeers(map[string][]string{"orders": {"127.0.0.1"}})
	var seen [][]string
	stop := p.watch("orders", func(ips []string) { seen = append(seen, ips) })
	p.set(map[string][]string{"orders": {"127.0.0.1", "127.0.0.2"}})
	p.set(map[string][]string{"orders": {"127.0.0.1", "127.0.0.2"}})
	stop()
	p.set(map[string][]string{"orders": {"127.0.0.2"}})
	assert.Equal(t, [][]string{{"127.0.0.1"}, {"127.0.0.1", "127.0.0.2"}}, seen)
	ip, ok := p.pick("orders")
	assert.True(t, ok)
	assert.Equal(t, "127.0.0.2", ip)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			_ = c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	d := &dialer{p: newPeers(map[string][]string{"orders": {"127.0.0.1"}}), d: net.Dialer{Timeout: time.Second}}
	c, err := d.DialContext(context.Background(), "tcp", "orders.fulfil.svc.cluster.local:"+port)
	require.NoError(t, err, "the in-cluster name resolves to a replica IP")
	_ = c.Close()
	_, err = d.DialContext(context.Background(), "tcp", "stock.fulfil.svc.cluster.local:"+port)
	var dnsErr *net.DNSError
	assert.ErrorAs(t, err, &dnsErr)
}

func TestBurner(t *testing.T) {
	b := newBurner(1, "postings", time.Millisecond, 2*time.Millisecond)
	assert.Equal(t, b.cost, newBurner(1, "postings", time.Millisecond, 2*time.Millisecond).cost, "the seed fixes the cost")
	start := time.Now()
	for range 20 {
		b.burn()
	}
	per := time.Since(start) / 20
	assert.Greater(t, per, b.cost/4)
	assert.Less(t, per, 20*b.cost)
}
