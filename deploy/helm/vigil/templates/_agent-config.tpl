{{/*
The node agent's collector config, before agent.config is merged on top.

Every signal passes the red-flag connector first (after memory_limiter only,
which protects the process), on all of it, before anything filters or samples;
a forward connector then carries it on to enrichment, batching and export.
*/}}
{{- define "vigil.agent.baseConfig" -}}
{{- $listen := .Values.listenAddress }}
{{- $gw := .Values.gateway.enabled }}
{{- $am := include "vigil.alertmanagerIDs" . | fromJsonArray }}
{{- $k8s := .Values.agent.k8sAttributes.enabled }}
{{- $post := list }}
{{- if $k8s }}{{ $post = append $post "k8s_attributes" }}{{ end }}
{{- $post = append $post "batch" }}
{{- $metricsIn := list "otlp" }}
{{- $mesh := .Values.agent.meshMetrics.enabled }}
{{- if or .Values.agent.scrape.enabled $mesh }}{{ $metricsIn = append $metricsIn "prometheus" }}{{ end }}
{{- if .Values.agent.hostMetrics.enabled }}{{ $metricsIn = append $metricsIn "host_metrics" }}{{ end }}
{{- if .Values.agent.kubeletMetrics.enabled }}{{ $metricsIn = append $metricsIn "kubelet_stats" }}{{ end }}
{{- $logsIn := list "otlp" }}
{{- if .Values.agent.logs.enabled }}{{ $logsIn = append $logsIn "container_log" }}{{ end }}
extensions:
  health_check:
    endpoint: {{ printf "%s:%d" $listen (int .Values.ports.health) | quote }}
  {{- if .Values.statusPage.enabled }}
  # The status page: service graph, flagged calls, active alerts (and /api/status).
  vigil_status:
    endpoint: {{ printf "%s:%d" $listen (int .Values.ports.status) | quote }}
  {{- end }}
  file_storage:
    directory: /var/lib/vigil
    create_directory: true
    timeout: 2s
    compaction:
      on_start: true
      on_rebound: true
      directory: /var/lib/vigil

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {{ printf "%s:%d" $listen (int .Values.ports.otlpGrpc) | quote }}
      http:
        endpoint: {{ printf "%s:%d" $listen (int .Values.ports.otlpHttp) | quote }}
  {{- if .Values.agent.logs.enabled }}
  # Container logs of this node's pods (Vigil's container_log): CRI and
  # Docker json-file lines, partial lines merged, rotation followed, the pod's
  # identity from the path; offsets checkpointed once the pipeline took the
  # lines.
  container_log:
    include:
      - /var/log/pods/*/*/*.log
      - /var/log/pods/*/*/*.log.*
    exclude:
      # The agent's own output.
      - {{ printf "/var/log/pods/%s_%s-*/*/*" .Release.Namespace (include "vigil.agent.fullname" .) | quote }}
      {{- range .Values.agent.logs.exclude }}
      - {{ . | quote }}
      {{- end }}
    start_at: {{ .Values.agent.logs.startAt }}
    storage: file_storage
    max_log_size: {{ .Values.agent.logs.maxLogSize | quote }}
  {{- end }}
  {{- with .Values.agent.hostMetrics }}
  {{- if .enabled }}
  # The node itself, through its root filesystem mounted at /hostfs.
  host_metrics:
    collection_interval: {{ .collectionInterval }}
    root_path: /hostfs
    scrapers:
      cpu: {}
      load: {}
      memory: {}
      paging: {}
      network: {}
      disk: {}
      filesystem:
        exclude_fs_types:
          fs_types: [autofs, binfmt_misc, bpf, cgroup, cgroup2, configfs, debugfs, devpts, devtmpfs, fusectl, hugetlbfs, mqueue, nsfs, overlay, proc, procfs, pstore, rpc_pipefs, securityfs, selinuxfs, squashfs, sysfs, tracefs]
          match_type: strict
        exclude_mount_points:
          mount_points: [/dev/*, /proc/*, /sys/*, /run/containerd/*, /run/k3s/containerd/*, /var/lib/docker/*, /var/lib/containerd/*, /var/lib/kubelet/*, /snap/*]
          match_type: regexp
  {{- end }}
  {{- end }}
  {{- with .Values.agent.kubeletMetrics }}
  {{- if .enabled }}
  # This node's kubelet (/stats/summary), with the agent's ServiceAccount token.
  kubelet_stats:
    collection_interval: {{ .collectionInterval }}
    auth_type: serviceAccount
    endpoint: "https://${env:HOST_IP}:10250"
    insecure_skip_verify: {{ .insecureSkipVerify }}
    {{- with .caFile }}
    ca_file: {{ . | quote }}
    {{- end }}
    metric_groups: [node, pod, container, volume]
  {{- end }}
  {{- end }}
  {{- if or .Values.agent.scrape.enabled $mesh }}
  prometheus:
    config:
      global:
        scrape_interval: {{ .Values.agent.scrape.interval }}
        scrape_timeout: {{ .Values.agent.scrape.timeout }}
      scrape_configs:
        {{- if .Values.agent.scrape.enabled }}
        # Pods of this node that opt in with prometheus.io/* annotations.
        - job_name: kubernetes-pods
          sample_limit: {{ int .Values.agent.scrape.sampleLimit }}
          label_limit: {{ int .Values.agent.scrape.labelLimit }}
          kubernetes_sd_configs:
            - role: pod
              selectors:
                - role: pod
                  field: spec.nodeName=${env:K8S_NODE_NAME}
          relabel_configs:
            - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
              action: keep
              regex: "true"
            - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
              action: replace
              target_label: __metrics_path__
              regex: (.+)
            - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
              action: replace
              regex: ([^:]+)(?::\d+)?;(\d+)
              replacement: $$1:$$2
              target_label: __address__
            - source_labels: [__meta_kubernetes_namespace]
              target_label: namespace
            - source_labels: [__meta_kubernetes_pod_name]
              target_label: pod
            - source_labels: [__meta_kubernetes_pod_container_name]
              target_label: container
          {{- if $mesh }}
          # Istio's merged endpoint (:15020) carries the sidecar's request
          # metrics too: the istio-proxies job reads them, once.
          metric_relabel_configs:
            - source_labels: [__name__]
              action: drop
              regex: istio_requests_total|istio_request_duration_milliseconds_(bucket|sum|count)
          {{- end }}
        {{- end }}
        {{- with .Values.agent.meshMetrics }}
        {{- if .enabled }}
        # This node's Istio sidecars (istio-proxy's Envoy stats port), for
        # the red flags: only the request metrics the redflag connector reads.
        - job_name: istio-proxies
          scrape_interval: {{ .interval }}
          scrape_timeout: {{ .timeout }}
          metrics_path: /stats/prometheus
          sample_limit: {{ int $.Values.agent.scrape.sampleLimit }}
          kubernetes_sd_configs:
            - role: pod
              selectors:
                - role: pod
                  field: spec.nodeName=${env:K8S_NODE_NAME}
          relabel_configs:
            - source_labels: [__meta_kubernetes_pod_container_name, __meta_kubernetes_pod_container_port_name]
              action: keep
              regex: istio-proxy;http-envoy-prom
            - source_labels: [__meta_kubernetes_namespace]
              target_label: namespace
            - source_labels: [__meta_kubernetes_pod_name]
              target_label: pod
          metric_relabel_configs:
            - source_labels: [__name__]
              action: keep
              regex: istio_requests_total|istio_request_duration_milliseconds_(bucket|sum|count)
        # This node's Linkerd proxies (their admin port), with the workload
        # Linkerd's own Prometheus config names them by.
        - job_name: linkerd-proxies
          scrape_interval: {{ .interval }}
          scrape_timeout: {{ .timeout }}
          sample_limit: {{ int $.Values.agent.scrape.sampleLimit }}
          kubernetes_sd_configs:
            - role: pod
              selectors:
                - role: pod
                  field: spec.nodeName=${env:K8S_NODE_NAME}
          relabel_configs:
            - source_labels: [__meta_kubernetes_pod_container_name, __meta_kubernetes_pod_container_port_name]
              action: keep
              regex: linkerd-proxy;linkerd-admin
            - source_labels: [__meta_kubernetes_namespace]
              target_label: namespace
            - source_labels: [__meta_kubernetes_pod_name]
              target_label: pod
            # linkerd.io/proxy-<kind>: the workload (deployment, statefulset,
            # daemonset, job, cronjob, replicaset, rollout), as Linkerd's own
            # Prometheus config maps it.
            - action: labelmap
              regex: __meta_kubernetes_pod_label_linkerd_io_proxy_(.+)
              replacement: $$1
          metric_relabel_configs:
            - source_labels: [__name__]
              action: keep
              regex: response_total|response_latency_ms_(bucket|sum|count)
        {{- end }}
        {{- end }}
  {{- end }}

processors:
  memory_limiter:
    check_interval: 1s
    limit_percentage: {{ int .Values.agent.memoryLimiter.limitPercentage }}
    spike_limit_percentage: {{ int .Values.agent.memoryLimiter.spikeLimitPercentage }}
  {{- if $k8s }}
  # Metadata of this node's pods only: the pod cache watches pods with
  # spec.nodeName = K8S_NODE_NAME.
  k8s_attributes:
    auth_type: serviceAccount
    passthrough: false
    filter:
      node_from_env_var: K8S_NODE_NAME
    extract:
      metadata: {{ toJson .Values.agent.k8sAttributes.metadata }}
    pod_association:
      - sources:
          - from: resource_attribute
            name: k8s.pod.uid
      - sources:
          - from: resource_attribute
            name: k8s.pod.ip
      - sources:
          - from: connection
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
  {{- $rf := deepCopy (default dict .Values.redflag) }}
  {{- if and .Values.statusPage.enabled (not (hasKey $rf "status")) }}{{ $_ := set $rf "status" "vigil_status" }}{{ end }}
  redflag: {{ toJson $rf }}
  forward/traces: {}
  forward/metrics: {}
  forward/logs: {}

exporters:
  {{- include "vigil.backendExporters" (dict "ctx" . "storage" true) | nindent 2 }}
  {{- if $gw }}
  # Every span of a trace to the same gateway replica.
  load_balancing:
    {{- $lb := deepCopy .Values.gateway.loadBalancing }}
    {{- $_ := set $lb "routing_key" "traceID" }}
    {{- if eq .Values.gateway.resolver.type "k8s" }}
    {{- $_ := set $lb "resolver" (dict "k8s" (dict "service" (printf "%s.%s" (include "vigil.gateway.headless" .) .Release.Namespace) "ports" (list (int .Values.ports.otlpGrpc)) "timeout" .Values.gateway.resolver.timeout "return_hostnames" true)) }}
    {{- else }}
    {{- $_ := set $lb "resolver" (dict "dns" (dict "hostname" (printf "%s.%s.svc" (include "vigil.gateway.headless" .) .Release.Namespace) "port" (toString .Values.ports.otlpGrpc) "interval" .Values.gateway.resolver.interval "timeout" .Values.gateway.resolver.timeout)) }}
    {{- end }}
    {{- $q := default dict (get $lb "sending_queue") }}
    {{- if not (hasKey $q "storage") }}{{ $_ := set $q "storage" "file_storage" }}{{ end }}
    {{- $_ := set $lb "sending_queue" $q }}
    {{- toYaml $lb | nindent 4 }}
  {{- end }}
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
  extensions: {{ if .Values.statusPage.enabled }}[health_check, file_storage, vigil_status]{{ else }}[health_check, file_storage]{{ end }}
  {{- include "vigil.telemetry" . | nindent 2 }}
  pipelines:
    traces/in:
      receivers: [otlp]
      processors: [memory_limiter]
      exporters: [redflag, forward/traces]
    traces:
      receivers: [forward/traces]
      processors: {{ toJson $post }}
      exporters: {{ if $gw }}[load_balancing]{{ else }}{{ toJson .Values.pipelines.traces }}{{ end }}
    metrics/in:
      receivers: {{ toJson $metricsIn }}
      processors: [memory_limiter]
      exporters: [redflag, forward/metrics]
    metrics:
      receivers: [forward/metrics, redflag]
      processors: {{ toJson $post }}
      exporters: {{ toJson .Values.pipelines.metrics }}
    {{- if .Values.alertsEndpoint.enabled }}
    metrics/alerts:
      receivers: [redflag]
      processors: [resource/alerts]
      exporters: [prometheus/alerts]
    {{- end }}
    logs/in:
      receivers: {{ toJson $logsIn }}
      processors: [memory_limiter]
      exporters: [redflag, forward/logs]
    logs:
      receivers: [forward/logs, redflag]
      processors: {{ toJson $post }}
      exporters: {{ toJson .Values.pipelines.logs }}
    {{- if $am }}
    logs/alerts:
      receivers: [redflag]
      exporters: {{ toJson $am }}
    {{- end }}
{{- end }}
