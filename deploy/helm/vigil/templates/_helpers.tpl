{{/* Names, labels and shared pieces. */}}

{{- define "vigil.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The resource name prefix; the component names append -agent or -gateway. */}}
{{- define "vigil.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vigil.agent.fullname" -}}
{{- printf "%s-agent" (include "vigil.fullname" .) }}
{{- end }}

{{- define "vigil.gateway.fullname" -}}
{{- printf "%s-gateway" (include "vigil.fullname" .) }}
{{- end }}

{{/* The gateway's headless Service: StatefulSet pod DNS and the agents' resolver. */}}
{{- define "vigil.gateway.headless" -}}
{{- printf "%s-gateway-headless" (include "vigil.fullname" .) }}
{{- end }}

{{- define "vigil.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vigil.labels" -}}
helm.sh/chart: {{ include "vigil.chart" . }}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vigil
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component; call with (dict "ctx" $ "component" "agent"). */}}
{{- define "vigil.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vigil.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "vigil.componentLabels" -}}
{{ include "vigil.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "vigil.image" -}}
{{- $repo := required "image.repository is empty: no Vigil image is published; build it from the repository's Dockerfile, push it where your nodes pull from, and set image.repository (and image.tag) to it, e.g. --set image.repository=registry.example/vigil (README: Deploy on Kubernetes)" .Values.image.repository }}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}
{{- end }}

{{- define "vigil.agent.serviceAccountName" -}}
{{- include "vigil.agent.fullname" . }}
{{- end }}

{{- define "vigil.gateway.serviceAccountName" -}}
{{- include "vigil.gateway.fullname" . }}
{{- end }}

{{- define "vigil.agent.priorityClassName" -}}
{{- if .Values.agent.priorityClassName }}
{{- .Values.agent.priorityClassName }}
{{- else if .Values.agent.priorityClass.create }}
{{- printf "%s-%s" (include "vigil.agent.fullname" .) .Release.Namespace | trunc 253 }}
{{- end }}
{{- end }}

{{/* The node directory holding the agent's file_storage. */}}
{{- define "vigil.agent.storageHostPath" -}}
{{- printf "%s/%s_%s" (trimSuffix "/" .Values.agent.storage.hostPath) .Release.Namespace (include "vigil.fullname" .) }}
{{- end }}

{{/* Checks shared by both configs: every pipeline names defined exporters. */}}
{{- define "vigil.checkPipelines" -}}
{{- range $signal := list "traces" "metrics" "logs" }}
{{- range $id := index $.Values.pipelines $signal }}
{{- if not (hasKey $.Values.exporters $id) }}
{{- fail (printf "pipelines.%s names exporter %q, which is not defined under exporters (defined: %s)" $signal $id (keys $.Values.exporters | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The backend exporters, with the persistent queue on file_storage for the
types in persistentQueueExporterTypes when $storage is true.
Call with (dict "ctx" $ "storage" true).
*/}}
{{- define "vigil.backendExporters" -}}
{{- $out := dict }}
{{- range $id, $cfg := .ctx.Values.exporters }}
{{- $c := deepCopy (default dict $cfg) }}
{{- $type := index (splitList "/" $id) 0 }}
{{- if and $.storage (has $type $.ctx.Values.persistentQueueExporterTypes) (ne (toString (get $c "protobuf_message")) "io.prometheus.write.v2.Request") }}
{{- $q := default dict (get $c "sending_queue") }}
{{- if not (hasKey $q "storage") }}
{{- $_ := set $q "storage" "file_storage" }}
{{- end }}
{{- $_ := set $c "sending_queue" $q }}
{{- end }}
{{- $_ := set $out $id $c }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* The alertmanager exporters, one per endpoint: alertmanager/0, alertmanager/1, ... */}}
{{- define "vigil.alertmanagerExporters" -}}
{{- $out := dict }}
{{- range $i, $url := .Values.alertmanager.endpoints }}
{{- $cfg := mergeOverwrite (deepCopy $.Values.alertmanager.config) (dict "endpoint" $url) }}
{{- if $.Values.cluster }}
{{- $_ := set $cfg "external_labels" (merge (dict "cluster" $.Values.cluster) (get $cfg "external_labels" | default dict)) }}
{{- end }}
{{- $_ := set $out (printf "alertmanager/%d" $i) $cfg }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{- define "vigil.alertmanagerIDs" -}}
{{- $ids := list }}
{{- range $i, $url := .Values.alertmanager.endpoints }}
{{- $ids = append $ids (printf "alertmanager/%d" $i) }}
{{- end }}
{{- toJson $ids }}
{{- end }}

{{/* The collector's own telemetry: metrics on ports.telemetry at the pod address. */}}
{{- define "vigil.telemetry" -}}
telemetry:
  logs:
    level: info
    encoding: json
  metrics:
    level: normal
    readers:
      - pull:
          exporter:
            prometheus:
              host: {{ .Values.listenAddress | quote }}
              port: {{ .Values.ports.telemetry }}
{{- end }}

{{/* Environment of every vigil container: the addresses its config binds and the node it runs on. */}}
{{- define "vigil.env" -}}
- name: MY_POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: K8S_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/*
GOMEMLIMIT for a container: useGOMEMLIMIT percent of its memory limit, in
bytes, so the Go runtime collects harder as it nears the limit instead of
being OOM-killed. Empty when the container has no memory limit. The argument
is the container's resources.
*/}}
{{- define "vigil.gomemlimit" -}}
{{- $limit := dig "limits" "memory" "" .resources | toString }}
{{- if and .ctx.Values.useGOMEMLIMIT.enabled $limit }}
{{- $m := regexFind "^[0-9.]+" $limit }}
{{- $unit := trimPrefix $m $limit }}
{{- $mult := get (dict "" 1 "k" 1000 "K" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776) $unit }}
{{- if not $mult }}
{{- fail (printf "cannot set GOMEMLIMIT from the memory limit %q: unit %q is not one of Ki, Mi, Gi, Ti, k, M, G, T" $limit $unit) }}
{{- end }}
{{- mulf (float64 $m) $mult .ctx.Values.useGOMEMLIMIT.percentage 0.01 | floor | int64 }}
{{- end }}
{{- end }}

{{- define "vigil.probes" -}}
livenessProbe:
  httpGet:
    path: /
    port: health
  initialDelaySeconds: 5
  periodSeconds: 10
  timeoutSeconds: 2
  failureThreshold: 6
readinessProbe:
  httpGet:
    path: /
    port: health
  periodSeconds: 5
  timeoutSeconds: 2
  failureThreshold: 3
{{- end }}

{{/* The final configs: the generated base with agent.config / gateway.config merged on top. */}}
{{- define "vigil.mergeConfig" -}}
{{- $base := .base | fromYaml }}
{{- if hasKey $base "Error" }}
{{- fail (printf "internal error: the generated %s config is not YAML: %s" .name (get $base "Error")) }}
{{- end }}
{{- toYaml (mustMergeOverwrite $base (deepCopy (default dict .override))) }}
{{- end }}

{{- define "vigil.agent.config" -}}
{{- include "vigil.mergeConfig" (dict "name" "agent" "base" (include "vigil.agent.baseConfig" .) "override" .Values.agent.config) }}
{{- end }}

{{- define "vigil.gateway.config" -}}
{{- include "vigil.mergeConfig" (dict "name" "gateway" "base" (include "vigil.gateway.baseConfig" .) "override" .Values.gateway.config) }}
{{- end }}
