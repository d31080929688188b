{{/*
The gateway's collector config, before gateway.config is merged on top.

Agents route spans by trace ID, so each replica holds whole traces for its
share of trace IDs: the red-flag connector sees complete traces here (cascade
attribution across services), before tail sampling.
*/}}
{{- define "vigil.gateway.baseConfig" -}}
{{- $listen := .Values.listenAddress }}
{{- $persist := .Values.gateway.persistence.enabled }}
{{- $am := include "vigil.alertmanagerIDs" . | fromJsonArray }}
{{- $traceProcs := list }}
{{- if .Values.gateway.tailSampling.enabled }}{{ $traceProcs = append $traceProcs "tail_sampling" }}{{ end }}
{{- $traceProcs = append $traceProcs "batch" }}
extensions:
  health_check:
    endpoint: {{ printf "%s:%d" $listen (int .Values.ports.health) | quote }}
  {{- if $persist }}
  file_storage:
    directory: /var/lib/vigil
    create_directory: true
    timeout: 2s
    compaction:
      on_start: true
      on_rebound: true
      directory: /var/lib/vigil
  {{- end }}

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {{ printf "%s:%d" $listen (int .Values.ports.otlpGrpc) | quote }}
      http:
        endpoint: {{ printf "%s:%d" $listen (int .Values.ports.otlpHttp) | quote }}

processors:
  memory_limiter:
    check_interval: 1s
    limit_percentage: {{ int .Values.gateway.memoryLimiter.limitPercentage }}
    spike_limit_percentage: {{ int .Values.gateway.memoryLimiter.spikeLimitPercentage }}
  {{- if .Values.gateway.tailSampling.enabled }}
  tail_sampling:
    {{- $ts := deepCopy .Values.gateway.tailSampling.config }}
    {{- if and $persist (not (hasKey $ts "storage")) }}
    {{- $_ := set $ts "storage" "/var/lib/vigil/tail_sampling" }}
    {{- end }}
    {{- toYaml $ts | nindent 4 }}
  {{- end }}
  batch: {}
  {{- if .Values.alertsEndpoint.enabled }}
  # The red-flag series for scraping without the connector's service.name and
  # service.instance.id, which the prometheus exporter turns into job and
  # instance labels (and a target_info series) that a scrape with honor_labels
  # would keep over the scraper's own; the scraper sets job and instance.
  resource/alerts:
    attributes:
      - {key: service.name, action: delete}
      - {key: service.namespace, action: delete}
      - {key: service.instance.id, action: delete}
  {{- end }}

connectors:
  {{- /* The gateway has no status page: a status set for the agents' is not its. */}}
  redflag: {{ omit (default dict .Values.redflag) "status" | toJson }}
  forward/traces: {}

exporters:
  {{- include "vigil.backendExporters" (dict "ctx" . "storage" $persist) | nindent 2 }}
  {{- if .Values.alertsEndpoint.enabled }}
  # Red-flag series (ALERTS, ALERTS_FOR_STATE, edge metrics) for Prometheus,
  # labelled as Prometheus writes them: no otel_scope_* labels.
  prometheus/alerts:
    endpoint: {{ printf "%s:%d" $listen (int .Values.ports.alerts) | quote }}
    send_timestamps: false
    metric_expiration: {{ .Values.alertsEndpoint.metricExpiration }}
    without_scope_info: true
    {{- with .Values.cluster }}
    const_labels: {cluster: {{ . | quote }}}
    {{- end }}
  {{- end }}
  {{- with (include "vigil.alertmanagerExporters" . | fromYaml) }}
  {{- toYaml . | nindent 2 }}
  {{- end }}

service:
  extensions: {{ if $persist }}[health_check, file_storage]{{ else }}[health_check]{{ end }}
  {{- include "vigil.telemetry" . | nindent 2 }}
  pipelines:
    traces/in:
      receivers: [otlp]
      processors: [memory_limiter]
      exporters: [redflag, forward/traces]
    traces:
      receivers: [forward/traces]
      processors: {{ toJson $traceProcs }}
      exporters: {{ toJson .Values.pipelines.traces }}
    # The gateway receives spans only; its metrics and logs are the red-flag
    # outputs computed on whole traces.
    metrics:
      receivers: [redflag]
      processors: [batch]
      exporters: {{ toJson .Values.pipelines.metrics }}
    {{- if .Values.alertsEndpoint.enabled }}
    metrics/alerts:
      receivers: [redflag]
      processors: [resource/alerts]
      exporters: [prometheus/alerts]
    {{- end }}
    logs:
      receivers: [redflag]
      processors: [batch]
      exporters: {{ toJson .Values.pipelines.logs }}
    {{- if $am }}
    logs/alerts:
      receivers: [redflag]
      exporters: {{ toJson $am }}
    {{- end }}
{{- end }}
