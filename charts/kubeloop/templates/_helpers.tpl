{{/* Names and labels shared by every template. */}}

{{- define "kubeloop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubeloop.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's full name: kubeloop.fullname + "-" + suffix, within 63 characters. */}}
{{- define "kubeloop.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "kubeloop.fullname" $root | trunc (int (sub 62 (len (index . 1))))) (index . 1) | trimSuffix "-" -}}
{{- end -}}

{{- define "kubeloop.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "kubeloop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubeloop
{{- end -}}

{{/* Selector labels of one component: (list $ "operator"). */}}
{{- define "kubeloop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeloop.name" (index . 0) }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "kubeloop.operatorName" -}}
{{- include "kubeloop.componentName" (list . "operator") -}}
{{- end -}}

{{- define "kubeloop.mlflowName" -}}
{{- include "kubeloop.componentName" (list . "mlflow") -}}
{{- end -}}

{{- define "kubeloop.prometheusName" -}}
{{- include "kubeloop.componentName" (list . "prometheus") -}}
{{- end -}}

{{/* The Prometheus the operator's canary analysis queries: explicit, else this chart's Prometheus, else none. */}}
{{- define "kubeloop.prometheusUrl" -}}
{{- if .Values.operator.settings.prometheusUrl -}}
{{- .Values.operator.settings.prometheusUrl -}}
{{- else if .Values.prometheus.enabled -}}
{{- printf "http://%s.%s.svc:%d" (include "kubeloop.prometheusName" .) .Release.Namespace (int .Values.prometheus.port) -}}
{{- end -}}
{{- end -}}

{{/* operator.watchNamespaces when they are all exact names (no kopf glob patterns), else empty: all. */}}
{{- define "kubeloop.exactWatchNamespaces" -}}
{{- $exact := true -}}
{{- range .Values.operator.watchNamespaces -}}{{- if or (contains "*" .) (contains "?" .) (hasPrefix "!" .) -}}{{- $exact = false -}}{{- end -}}{{- end -}}
{{- if and $exact .Values.operator.watchNamespaces -}}
{{- toJson .Values.operator.watchNamespaces -}}
{{- end -}}
{{- end -}}

{{- define "kubeloop.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubeloop.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kubeloop.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The MLflow tracking URI the operator gets: explicit, else this chart's MLflow, else none. */}}
{{- define "kubeloop.mlflowTrackingUri" -}}
{{- if .Values.operator.settings.mlflowTrackingUri -}}
{{- .Values.operator.settings.mlflowTrackingUri -}}
{{- else if .Values.mlflow.enabled -}}
{{- printf "http://%s.%s.svc:%d" (include "kubeloop.mlflowName" .) .Release.Namespace (int .Values.mlflow.port) -}}
{{- end -}}
{{- end -}}

{{/* KUBELOOP_OPERATOR_SERVICE_MONITORS: "" (auto: the operator looks for the CRD), "true" or "false". */}}
{{- define "kubeloop.serviceMonitorsSetting" -}}
{{- $v := .Values.operator.settings.serviceMonitors -}}
{{- if eq (toString $v) "auto" -}}
{{- if .Values.monitoring.podMonitor.enabled -}}false{{- end -}}
{{- else -}}
{{- toString $v -}}
{{- end -}}
{{- end -}}

{{/* The restricted Pod Security Standard, container part. */}}
{{- define "kubeloop.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The restricted Pod Security Standard, pod part: (dict with runAsUser/runAsGroup/fsGroup). */}}
{{- define "kubeloop.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsGroup }}
fsGroup: {{ .fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "kubeloop.prometheusAdapterName" -}}
{{- include "kubeloop.componentName" (list . "prometheus-adapter") -}}
{{- end -}}

{{/* The Prometheus prometheus-adapter queries: its own setting, else the operator's (explicit or this chart's). */}}
{{- define "kubeloop.prometheusAdapterUrl" -}}
{{- $url := default (include "kubeloop.prometheusUrl" .) .Values.prometheusAdapter.prometheusUrl -}}
{{- required "prometheusAdapter.enabled needs a Prometheus: set prometheusAdapter.prometheusUrl, or prometheus.enabled" $url -}}
{{- end -}}
