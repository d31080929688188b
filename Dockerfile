# syntax=docker/dockerfile:1
# Vigil's container image: a static binary on distroless, as a non-root user.
#   docker build -t vigilhq/vigil:dev --build-arg VERSION=$(git describe --tags --always) .
#   docker run --rm -p 4317:4317 -p 4318:4318 -p 13133:13133 vigilhq/vigil:dev
# With no arguments it runs the embedded default with every listener on 0.0.0.0
# (deploy/docker/container.yaml); pass --config to use your own.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
# CGO_ENABLED=0: a static binary, no libc needed in the runtime image.
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/vigil ./cmd/vigil

# distroless/static: CA certificates, tzdata and /etc/passwd, no shell, no
# package manager. The :nonroot tag runs as uid/gid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/vigil /usr/bin/vigil
COPY deploy/docker/container.yaml /etc/vigil/container.yaml
USER 65532:65532
# OTLP gRPC and HTTP, remote write, own telemetry, pipeline metrics, health.
EXPOSE 4317 4318 19291 8888 8889 8890 13133
ENTRYPOINT ["/usr/bin/vigil"]
CMD ["--config", "vigil:default", "--config", "/etc/vigil/container.yaml"]
