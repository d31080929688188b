// The collector's metadata generator, pinned: the newest mdatagen whose
// dependencies the module proxy serves here (v0.160.0 to v0.165.0 are not
// served; v0.161.0's go.opentelemetry.io/collector/internal/schemagen is not).
// `make generate` builds it into .cache/bin.
module github.com/vigilhq/vigil/scripts/mdatagen

go 1.26.0

require go.opentelemetry.io/collector/cmd/mdatagen v0.159.0
