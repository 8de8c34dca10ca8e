{{/*
The app.kubernetes.io/name label: nameOverride (default "aws-xray", as the community chart), else the chart name.
*/}}
{{- define "xrayd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Object names: fullnameOverride, else the release name (`helm install aws-xray` gives Service aws-xray).
*/}}
{{- define "xrayd.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "xrayd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of the daemon pods: exactly the community chart's, so `helm upgrade` from it keeps the
DaemonSet's immutable selector.
*/}}
{{- define "xrayd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "xrayd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "xrayd.commonLabels" -}}
helm.sh/chart: {{ include "xrayd.chart" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "xrayd.labels" -}}
{{ include "xrayd.selectorLabels" . }}
app.kubernetes.io/component: daemon
{{ include "xrayd.commonLabels" . }}
{{- end }}

{{/*
The server's pods carry another app.kubernetes.io/name, so neither the DaemonSet nor the headless
Service selects them.
*/}}
{{- define "xrayd.serverName" -}}
{{- printf "%s-server" (include "xrayd.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "xrayd.serverSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-server" (include "xrayd.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "xrayd.serverLabels" -}}
{{ include "xrayd.serverSelectorLabels" . }}
app.kubernetes.io/component: server
{{ include "xrayd.commonLabels" . }}
{{- end }}

{{- define "xrayd.serverEnabled" -}}
{{- if or .Values.server.enabled (eq .Values.mode "local") }}true{{ end }}
{{- end }}

{{- define "xrayd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "xrayd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "xrayd.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{- define "xrayd.serverImage" -}}
{{- $repo := .Values.server.image.repository | default .Values.image.repository }}
{{- $tag := .Values.server.image.tag | default .Values.image.tag | default .Chart.AppVersion | toString }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}

{{/*
The X-Ray API the daemons upload to: in mode local the server's Service, else xray.endpoint ("" = AWS).
*/}}
{{- define "xrayd.endpoint" -}}
{{- if eq .Values.mode "local" }}
{{- printf "http://%s.%s.svc.%s:%v" (include "xrayd.serverName" .) .Release.Namespace .Values.clusterDomain .Values.server.port }}
{{- else if eq .Values.mode "aws" }}
{{- .Values.xray.endpoint | default "" }}
{{- end }}
{{- end }}

{{/*
Image pull secrets, as list items: imagePullSecrets, plus the community chart 1.x image.pullSecrets (one name).
*/}}
{{- define "xrayd.imagePullSecrets" -}}
{{- $secrets := list }}
{{- range .Values.imagePullSecrets }}{{ $secrets = append $secrets . }}{{ end }}
{{- with .Values.image.pullSecrets }}{{ $secrets = append $secrets (dict "name" .) }}{{ end }}
{{- toYaml $secrets }}
{{- end }}
