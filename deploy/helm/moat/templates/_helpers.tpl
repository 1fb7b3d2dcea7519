{{/* The release's base name, at most 63 characters (a DNS label). */}}
{{- define "moat.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "moat.gatewayName" -}}
{{- printf "%s-gateway" (include "moat.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object besides the selector labels. */}}
{{- define "moat.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "moat.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "moat.commonLabels" . }}
{{- end -}}

{{/* Moat's pods. */}}
{{- define "moat.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{/* The gateway's pods: the only ones the NetworkPolicy lets reach Moat's public port. */}}
{{- define "moat.gatewaySelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "moat.existingSecret" -}}
{{- required "existingSecret: name the Secret holding jwks.json, secrets.json, admin-token (and postgres-url, redis-url); the chart never generates one" .Values.existingSecret -}}
{{- end -}}

{{/*
The admin listener's admin.allowedHosts as a JSON array: the admin Service's names (the Host headers
Prometheus sends through it), then config.admin.allowedHosts (the environment replaces that key).
*/}}
{{- define "moat.adminHosts" -}}
{{- $service := printf "%s-admin" (include "moat.fullname" .) -}}
{{- $namespace := .Release.Namespace -}}
{{- $names := list $service (printf "%s.%s" $service $namespace) (printf "%s.%s.svc" $service $namespace) (printf "%s.%s.svc.cluster.local" $service $namespace) -}}
{{- concat $names (default (list) .Values.config.admin.allowedHosts) | toJson -}}
{{- end -}}
