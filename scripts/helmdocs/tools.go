//go:build tools

// Package helmdocs pins github.com/norwoodj/helm-docs, which generates the
// chart's README.md from its values.yaml.
package helmdocs

import _ "github.com/norwoodj/helm-docs/cmd/helm-docs"
