// Command tracer is the node test's instrumented workload: with the OTel Go
// SDK and its OTLP/gRPC exporter it sends -count traces of two spans each to
// OTEL_EXPORTER_OTLP_ENDPOINT (the pod sets it to its node's agent), then
// sleeps so the pod stays Running.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

func main() {
	count := flag.Int("count", 50, "traces to send")
	service := flag.String("service", "checkout", "service.name")
	flag.Parse()
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(*service))))
	tr := tp.Tracer("vigil-node-test")
	for i := 1; i <= *count; i++ {
		ctx, root := tr.Start(ctx, fmt.Sprintf("order %d", i))
		_, child := tr.Start(ctx, "charge")
		child.End()
		root.End()
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := tp.Shutdown(sctx); err != nil {
		log.Print("flush: ", err)
	}
	cancel()
	log.Printf("sent %d traces", *count)
	for {
		time.Sleep(time.Hour)
	}
}
