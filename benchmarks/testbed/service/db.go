package service

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/XSAM/otelsql"
	// Registers the "pgx" database/sql driver.
	_ "github.com/jackc/pgx/v5/stdlib"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// acquireTimeout bounds the wait for a pooled connection: a request that
// cannot get one in time fails with RESOURCE_EXHAUSTED and counts in
// db.client.connection.timeouts.
const acquireTimeout = 500 * time.Millisecond

// database is a replica's pool to its PostgreSQL database: database/sql with
// the pgx driver, wrapped by otelsql, and the semantic-convention pool
// metrics.
type database struct {
	db       *sql.DB
	name     string
	host     string
	port     int
	max      int
	pending  atomic.Int64
	timeouts metric.Int64Counter
	waitTime metric.Float64Histogram
	poolAttr metric.MeasurementOption
	regs     []metric.Registration

	mu       sync.Mutex
	leaked   []*sql.Conn
	leakFrom time.Time
	leakGap  time.Duration // 0: not leaking
}

// openDB opens the pool. addr is the address the replica connects to (the
// database's proxy); its host and port become server.address and
// server.port.
func openDB(tel *telemetry, addr, user, name string, maxOpen int) (*database, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("cannot parse database address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("cannot parse database port %q: %w", portStr, err)
	}
	attrs := []attribute.KeyValue{
		semconv.DBSystemNamePostgreSQL,
		semconv.DBNamespace(name),
		semconv.ServerAddress(host),
		semconv.ServerPort(port),
	}
	dsn := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable&connect_timeout=5", user, addr, name)
	db, err := otelsql.Open("pgx", dsn,
		otelsql.WithTracerProvider(tel.tp),
		otelsql.WithMeterProvider(tel.mp),
		otelsql.WithAttributes(attrs...),
		otelsql.WithSpanOptions(otelsql.SpanOptions{
			// Keep the statements' spans (with db.query.text); drop the
			// session resets, row iteration and connects, and statements
			// run outside any trace (the queue's polling loop).
			OmitConnResetSession: true,
			OmitRows:             true,
			OmitConnectorConnect: true,
			SpanFilter: func(ctx context.Context, _ otelsql.Method, _ string, _ []driver.NamedValue) bool {
				return trace.SpanContextFromContext(ctx).IsValid()
			},
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("cannot open database %s: %w", name, err)
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxOpen)
	db.SetConnMaxIdleTime(5 * time.Minute)
	d := &database{db: db, name: name, host: host, port: port, max: maxOpen}
	if err := d.instrument(tel, attrs); err != nil {
		_ = db.Close()
		return nil, err
	}
	return d, nil
}

// instrument registers otelsql's DBStats metrics and the semantic-convention
// pool metrics (db.client.connection.*), observed from db.Stats() and the
// replica's own count of waiters.
func (d *database) instrument(tel *telemetry, attrs []attribute.KeyValue) error {
	reg, err := otelsql.RegisterDBStatsMetrics(d.db, otelsql.WithMeterProvider(tel.mp), otelsql.WithAttributes(attrs...))
	if err != nil {
		return fmt.Errorf("cannot register pool metrics: %w", err)
	}
	d.regs = append(d.regs, reg)
	pool := semconv.DBClientConnectionPoolName(net.JoinHostPort(d.host, strconv.Itoa(d.port)) + "/" + d.name)
	d.poolAttr = metric.WithAttributeSet(attribute.NewSet(pool))
	used := metric.WithAttributeSet(attribute.NewSet(pool, semconv.DBClientConnectionStateUsed))
	idle := metric.WithAttributeSet(attribute.NewSet(pool, semconv.DBClientConnectionStateIdle))
	m := tel.meter
	count, err1 := m.Int64ObservableUpDownCounter("db.client.connection.count", metric.WithUnit("{connection}"),
		metric.WithDescription("The number of connections that are currently in state described by the state attribute."))
	maxC, err2 := m.Int64ObservableUpDownCounter("db.client.connection.max", metric.WithUnit("{connection}"),
		metric.WithDescription("The maximum number of open connections allowed."))
	pending, err3 := m.Int64ObservableUpDownCounter("db.client.connection.pending_requests", metric.WithUnit("{request}"),
		metric.WithDescription("The number of current pending requests for an open connection."))
	d.timeouts, err = m.Int64Counter("db.client.connection.timeouts", metric.WithUnit("{timeout}"),
		metric.WithDescription("The number of connection timeouts that have occurred trying to obtain a connection from the pool."))
	var err4 error
	d.waitTime, err4 = m.Float64Histogram("db.client.connection.wait_time", metric.WithUnit("s"),
		metric.WithDescription("The time it took to obtain an open connection from the pool."))
	if err := errors.Join(err1, err2, err3, err, err4); err != nil {
		return fmt.Errorf("cannot create pool metrics: %w", err)
	}
	reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := d.db.Stats()
		o.ObserveInt64(count, int64(st.InUse), used)
		o.ObserveInt64(count, int64(st.Idle), idle)
		o.ObserveInt64(maxC, int64(st.MaxOpenConnections), d.poolAttr)
		o.ObserveInt64(pending, d.pending.Load(), d.poolAttr)
		return nil
	}, count, maxC, pending)
	if err != nil {
		return fmt.Errorf("cannot register pool metrics: %w", err)
	}
	d.regs = append(d.regs, reg)
	return nil
}

// acquire takes a connection from the pool, waiting at most acquireTimeout.
func (d *database) acquire(ctx context.Context) (*sql.Conn, error) {
	d.pending.Add(1)
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, acquireTimeout)
	conn, err := d.db.Conn(actx)
	cancel()
	d.pending.Add(-1)
	d.waitTime.Record(ctx, time.Since(start).Seconds(), d.poolAttr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		d.timeouts.Add(ctx, 1, d.poolAttr)
		st := d.db.Stats()
		return nil, status.Errorf(codes.ResourceExhausted, "cannot acquire a database connection: %d of %d in use: %v", st.InUse, st.MaxOpenConnections, err)
	}
	return conn, nil
}

// release returns a connection to the pool, unless the replica is leaking
// and a leak is due (about one every leakGap, so the pool is gone after
// the configured time).
func (d *database) release(conn *sql.Conn) {
	d.mu.Lock()
	if d.leakGap > 0 && len(d.leaked) < d.max && time.Since(d.leakFrom) >= time.Duration(len(d.leaked)+1)*d.leakGap {
		d.leaked = append(d.leaked, conn)
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	_ = conn.Close()
}

// setLeak starts leaking (seconds > 0: the pool is gone after about that
// long) or stops and returns every leaked connection.
func (d *database) setLeak(seconds float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if seconds > 0 {
		if d.leakGap == 0 {
			d.leakFrom = time.Now()
		}
		d.leakGap = time.Duration(seconds / float64(d.max) * float64(time.Second))
		return
	}
	d.leakGap = 0
	for _, c := range d.leaked {
		_ = c.Close()
	}
	d.leaked = nil
}

func (d *database) leakedCount() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return int64(len(d.leaked))
}

// query runs a statement with one argument and reads its rows.
func (d *database) query(ctx context.Context, stmt string, arg string) error {
	conn, err := d.acquire(ctx)
	if err != nil {
		return err
	}
	defer d.release(conn)
	rows, err := conn.QueryContext(ctx, stmt, arg)
	if err != nil {
		return dbError(ctx, err)
	}
	for rows.Next() {
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return dbError(ctx, err)
	}
	return nil
}

// queryInt runs a statement that returns one integer.
func (d *database) queryInt(ctx context.Context, stmt string, args ...any) (int64, error) {
	conn, err := d.acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer d.release(conn)
	var n int64
	if err := conn.QueryRowContext(ctx, stmt, args...).Scan(&n); err != nil {
		return 0, dbError(ctx, err)
	}
	return n, nil
}

// exec runs a statement that returns no rows.
func (d *database) exec(ctx context.Context, stmt string, args ...any) error {
	conn, err := d.acquire(ctx)
	if err != nil {
		return err
	}
	defer d.release(conn)
	if _, err := conn.ExecContext(ctx, stmt, args...); err != nil {
		return dbError(ctx, err)
	}
	return nil
}

func dbError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) {
		return status.Errorf(codes.Unavailable, "cannot query the database: %v", err)
	}
	return status.Errorf(codes.Internal, "cannot query the database: %v", err)
}

func (d *database) close() error {
	d.setLeak(0)
	var errs []error
	for _, r := range d.regs {
		errs = append(errs, r.Unregister())
	}
	errs = append(errs, d.db.Close())
	return errors.Join(errs...)
}
