package topo

import "time"

// fulfil is an order pipeline on a shared PostgreSQL database with a
// table-based job queue: orders publishes to fulfil.jobs, the picker workers
// consume it and call stock and carrier; reports and audit are low-traffic
// back-office services.
var fulfil = &Topology{
	Name:        "fulfil",
	Description: "queue and shared database: api(HTTP) -> orders(HTTP, DB, publishes fulfil.jobs); picker workers consume it -> stock(gRPC, DB) + carrier(HTTP) -> carrier-api; reports(DB, -> stock) and audit are low-traffic",
	Front:       "api",
	Rate:        15,
	Flows: []Flow{
		{Name: "place", Service: "api", Route: "POST /api/orders", Weight: 0.6},
		{Name: "track", Service: "api", Route: "GET /api/orders/{id}", Weight: 0.4},
		{Name: "report", Service: "reports", Route: "GET /reports/daily", Rate: 4.0 / 60},
	},
	Databases: []string{"fulfil"},
	Services: []Service{
		{
			Name: "api", Protocol: HTTP, Replicas: 2, PodIP: true, Version: "1.9.0", Work: [2]time.Duration{300 * time.Microsecond, 500 * time.Microsecond},
			Ops: []Op{
				{Name: "POST /api/orders", Front: true, Steps: []Step{call("orders", "POST /orders", 2*time.Second)}},
				{Name: "GET /api/orders/{id}", Front: true, Steps: []Step{call("orders", "GET /orders/{id}", time.Second)}},
			},
		},
		{
			Name: "orders", Protocol: HTTP, Replicas: 2, Version: "4.4.0", Work: [2]time.Duration{400 * time.Microsecond, 700 * time.Microsecond},
			DB: &DBUse{Database: "fulfil", MaxOpen: 6},
			Ops: []Op{
				{Name: "POST /orders", Validates: true, Steps: []Step{
					{Kind: Query, SQL: "SELECT place_order($1, 'sku-' || (abs(hashtext($1)) % 1000), 1)"},
					{Kind: Publish, Queue: "fulfil.jobs"},
					{Kind: Async, Calls: []CallSpec{{Service: "audit", Method: "POST /audit/events", Timeout: time.Second, ByIP: true, Share: 0.005}}},
				}},
				{Name: "GET /orders/{id}", Validates: true, Steps: []Step{
					{Kind: Query, SQL: "SELECT id, sku, qty FROM orders WHERE ref = $1"},
				}},
			},
		},
		{
			Name: "picker", Protocol: Worker, Replicas: 2, PodIP: true, Version: "2.2.5", Work: [2]time.Duration{300 * time.Microsecond, 600 * time.Microsecond},
			DB: &DBUse{Database: "fulfil", MaxOpen: 4},
			Jobs: &Consumer{Queue: "fulfil.jobs", Workers: 3, Steps: []Step{
				call("stock", "Reserve", time.Second),
				call("carrier", "POST /v1/shipments", 2*time.Second),
			}},
		},
		{
			Name: "stock", Protocol: GRPC, GRPCName: "fulfil.v1.Stock", Replicas: 2, Version: "3.3.1", Work: [2]time.Duration{400 * time.Microsecond, 700 * time.Microsecond},
			DB: &DBUse{Database: "fulfil", MaxOpen: 6},
			Ops: []Op{
				{Name: "Reserve", Steps: []Step{{Kind: Query, SQL: "SELECT reserve_stock('sku-' || (abs(hashtext($1)) % 1000), 1)"}}},
				{Name: "Level", Steps: []Step{{Kind: Query, SQL: "SELECT qty FROM stock WHERE sku = 'sku-' || (abs(hashtext($1)) % 1000)"}}},
			},
		},
		{
			Name: "carrier", Protocol: HTTP, Replicas: 1, PodIP: true, Version: "1.0.3", Work: [2]time.Duration{300 * time.Microsecond, 500 * time.Microsecond},
			Ops: []Op{{Name: "POST /v1/shipments", Steps: []Step{{Kind: Call, Calls: []CallSpec{
				{Service: "carrier-api", Method: "POST /v2/labels", Timeout: 600 * ms, HTTPRetries: 2},
			}}}}},
		},
		{
			Name: "carrier-api", Protocol: HTTP, Replicas: 1, Version: "2024.11", Work: [2]time.Duration{300 * time.Microsecond, 500 * time.Microsecond},
			Ops: []Op{{Name: "POST /v2/labels", Sleep: 25 * ms}},
		},
		{
			Name: "reports", Protocol: HTTP, Replicas: 1, PodIP: true, Version: "0.6.0", Work: [2]time.Duration{500 * time.Microsecond, 900 * time.Microsecond},
			DB: &DBUse{Database: "fulfil", MaxOpen: 2},
			Ops: []Op{{Name: "GET /reports/daily", Front: true, Steps: []Step{
				{Kind: Query, SQL: "SELECT count(*), coalesce(sum(qty), 0) FROM orders WHERE created_at > now() - interval '1 hour' AND ref <> $1"},
				call("stock", "Level", time.Second),
			}}},
		},
		{
			Name: "audit", Protocol: HTTP, Replicas: 1, Version: "1.1.1", Work: [2]time.Duration{300 * time.Microsecond, 500 * time.Microsecond},
			Ops: []Op{{Name: "POST /audit/events", Sleep: 4 * ms}},
		},
	},
	Plan: []Slot{
		{Faults: []FaultSpec{
			{Kind: KindSlowQuery, Target: DBOrigin("fulfil"), Via: []string{"orders", "stock"}, Means: PGSleep, Min: 200, Max: 600},
			{Kind: KindNetworkDelay, Target: DBOrigin("fulfil"), Means: LinkLatency, Min: 60, Max: 150},
		}},
		{Faults: []FaultSpec{{Kind: KindPoolExhaustion, Target: "stock", Means: PoolLeak, Min: 20, Max: 60}}},
		{Faults: []FaultSpec{{Kind: KindErrors, Target: "carrier-api", Means: ErrorReturns, Min: 0.5, Max: 0.9}}},
		{Faults: []FaultSpec{{Kind: KindErrors, Target: "stock", Method: "Level", Means: ErrorReturns, Min: 0.6, Max: 1}}},
		{Control: &ControlSpec{Kind: ControlDeploy, Target: "stock"}},
		{Control: &ControlSpec{Kind: ControlFlood4xx, Target: "api", Min: 1, Max: 2}},
	},
	Short: [2]Slot{
		{Faults: []FaultSpec{
			{Kind: KindErrors, Target: "carrier-api", Means: ErrorReturns, Min: 0.6, Max: 0.9},
			{Kind: KindPoolExhaustion, Target: "stock", Means: PoolLeak, Min: 15, Max: 30},
		}},
		{Faults: []FaultSpec{
			{Kind: KindSlowQuery, Target: DBOrigin("fulfil"), Via: []string{"orders", "stock"}, Means: PGSleep, Min: 300, Max: 600},
		}},
	},
	Schema: fulfilSchema,
}

// fulfilSchema creates the fulfil database's tables and functions. The
// functions call testbed_delay(), which sleeps knobs.slow_ms: the slow-query
// fault sets it.
const fulfilSchema = `
CREATE TABLE orders (id bigserial PRIMARY KEY, ref text NOT NULL, sku text NOT NULL, qty int NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX orders_ref ON orders (ref);
CREATE INDEX orders_created ON orders (created_at);
CREATE TABLE stock (sku text PRIMARY KEY, qty bigint NOT NULL);
INSERT INTO stock SELECT 'sku-' || g, 100000 FROM generate_series(0, 999) g;
CREATE TABLE jobs (id bigserial PRIMARY KEY, queue text NOT NULL, payload jsonb NOT NULL, traceparent text NOT NULL DEFAULT '',
  attempts int NOT NULL DEFAULT 0, visible_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX jobs_ready ON jobs (queue, visible_at, id);
CREATE TABLE knobs (name text PRIMARY KEY, value double precision NOT NULL);
INSERT INTO knobs VALUES ('slow_ms', 0);
CREATE FUNCTION testbed_delay() RETURNS void LANGUAGE plpgsql AS $$
DECLARE ms double precision;
BEGIN
  SELECT value INTO ms FROM knobs WHERE name = 'slow_ms';
  IF ms > 0 THEN PERFORM pg_sleep(ms / 1000.0); END IF;
END $$;
CREATE FUNCTION place_order(p_ref text, p_sku text, p_qty int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE oid bigint;
BEGIN
  PERFORM testbed_delay();
  INSERT INTO orders (ref, sku, qty) VALUES (p_ref, p_sku, p_qty) RETURNING id INTO oid;
  RETURN oid;
END $$;
CREATE FUNCTION reserve_stock(p_sku text, p_qty int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE remaining bigint;
BEGIN
  PERFORM testbed_delay();
  UPDATE stock SET qty = CASE WHEN qty >= p_qty THEN qty - p_qty ELSE qty + 100000 END WHERE sku = p_sku RETURNING qty INTO remaining;
  RETURN coalesce(remaining, 0);
END $$;
`
