{{/* The chart's name, overridable. */}}
{{- define "tenantauth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of every object. Kept to 40 characters so that
"<fullname>-validating-webhook-configuration" and the like stay valid.
*/}}
{{- define "tenantauth.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else if contains (include "tenantauth.name" .) .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "tenantauth.name" .) | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "tenantauth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "tenantauth.labels" -}}
helm.sh/chart: {{ include "tenantauth.chart" . }}
app.kubernetes.io/name: {{ include "tenantauth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: pass (dict "ctx" $ "component" "operator"). */}}
{{- define "tenantauth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenantauth.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tenantauth.componentLabels" -}}
{{ include "tenantauth.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tenantauth.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "tenantauth.operator.serviceAccountName" -}}
{{- default (printf "%s-operator" (include "tenantauth.fullname" .)) .Values.operator.serviceAccount.name }}
{{- end }}

{{- define "tenantauth.authserver.serviceAccountName" -}}
{{- default (printf "%s-authserver" (include "tenantauth.fullname" .)) .Values.authserver.serviceAccount.name }}
{{- end }}

{{- define "tenantauth.webhook.serviceName" -}}
{{- printf "%s-webhook" (include "tenantauth.fullname" .) }}
{{- end }}

{{- define "tenantauth.webhook.secretName" -}}
{{- printf "%s-webhook-cert" (include "tenantauth.fullname" .) }}
{{- end }}

{{/* The watched namespaces as the comma list the binary's flags take. */}}
{{- define "tenantauth.watchNamespaces" -}}
{{- join "," .Values.watchNamespaces }}
{{- end }}

{{/* Cross-value checks the JSON schema cannot express. */}}
{{- define "tenantauth.validate" -}}
{{- if and (eq .Values.store.backend "memory") (gt (int .Values.authserver.replicas) 1) }}
{{- fail "store.backend=memory keeps sessions in one process: set authserver.replicas to 1 or store.backend to kubernetes" }}
{{- end }}
{{- if and .Values.smtp.host (not .Values.smtp.from) }}
{{- fail "smtp.from is required when smtp.host is set" }}
{{- end }}
{{- end }}

{{/* The restricted pod and container security settings both Deployments use. */}}
{{- define "tenantauth.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "tenantauth.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
  - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}
