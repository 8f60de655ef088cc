{{- /*
kubeloop's Prometheus alert rules: the one source of the PrometheusRule (templates/prometheusrule.yaml),
of the chart's Prometheus (templates/prometheus.yaml, key kubeloop-rules.yaml of its ConfigMap) and of
manifests/alerts/kubeloop-rules.yaml (default values, hack/render-alerts.sh). Thresholds, `for` and
severities come from .Values.alerts. Prometheus's own template text is wrapped in {{` `}} so that
Helm leaves it alone.

Metrics: the model servers' (serving/kubeloop_serving/metrics.py: `model` is the ModelDeployment's name,
Prometheus adds `namespace`) and the operator's (operator/kubeloop_operator/metrics.py: labelled with
the resource's namespace and name). Operator series are aggregated with max by the resource, so that a
replaced operator pod or a second scrape job never doubles an alert.
*/ -}}
{{- define "kubeloop.alertRules" -}}
{{- $a := .Values.alerts -}}
{{- $extra := $a.ruleLabels -}}
{{- $monitoring := list "driftDetected" "performanceDrop" "labelCoverageLow" "fairnessBreach" -}}
{{- $serving := list "servingErrorRate" "servingLatencyP99" "canaryRolledBack" -}}
groups:
{{- $any := false }}
{{- range $name := concat $monitoring $serving }}{{ if (index $a $name).enabled }}{{ $any = true }}{{ end }}{{ end }}
{{- if not $any }} []{{ end }}
{{- $on := false }}
{{- range $name := $monitoring }}{{ if (index $a $name).enabled }}{{ $on = true }}{{ end }}{{ end }}
{{- if $on }}
  - name: kubeloop-monitoring
    rules:
      {{- with $a.driftDetected }}
      {{- if .enabled }}
      # The value is the share of features that drifted; the monitor's rule said that is dataset drift.
      - alert: KubeloopDriftDetected
        expr: |-
          max by (namespace, monitor) (kubeloop_drift_share)
            and on (namespace, monitor)
          max by (namespace, monitor) (kubeloop_drift_detected) == 1
        for: {{ .for }}
        labels:
          {{- include "kubeloop.alertLabels" (list .severity $extra) | nindent 10 }}
        annotations:
          summary: {{`Data drift detected by DriftMonitor {{ $labels.namespace }}/{{ $labels.monitor }}`}}
          description: >-
            {{`DriftMonitor {{ $labels.namespace }}/{{ $labels.monitor }} found dataset drift at its latest
            check: {{ $value | humanizePercentage }} of the features drifted. See the monitor's
            status.features and its report (kubectl describe driftmonitor -n {{ $labels.namespace }}
            {{ $labels.monitor }}).`}}
      {{- end }}
      {{- end }}
      {{- with $a.performanceDrop }}
      {{- if .enabled }}
      # mae and rmse are errors (the threshold is a maximum); every other metric is a score (a minimum).
      # Equal to the threshold is no drop.
      - alert: KubeloopModelPerformanceDrop
        expr: |-
          (
            max by (namespace, monitor, metric, source) (kubeloop_monitor_performance{metric!~"mae|rmse"})
              < on (namespace, monitor, metric) group_left ()
            max by (namespace, monitor, metric) (kubeloop_monitor_performance_threshold)
          )
          or
          (
            max by (namespace, monitor, metric, source) (kubeloop_monitor_performance{metric=~"mae|rmse"})
              > on (namespace, monitor, metric) group_left ()
            max by (namespace, monitor, metric) (kubeloop_monitor_performance_threshold)
          )
        for: {{ .for }}
        labels:
          {{- include "kubeloop.alertLabels" (list .severity $extra) | nindent 10 }}
        annotations:
          summary: {{`Model performance past its threshold for monitor {{ $labels.namespace }}/{{ $labels.monitor }}`}}
          description: >-
            {{`The {{ $labels.source }} {{ $labels.metric }} of the model watched by
            {{ $labels.namespace }}/{{ $labels.monitor }} is {{ $value | printf "%.4g" }}, past its
            threshold{{ with printf "max(kubeloop_monitor_performance_threshold{namespace='%s',monitor='%s',metric='%s'})" $labels.namespace $labels.monitor $labels.metric | query }}
            {{ . | first | value | printf "%.4g" }}{{ end }} (a minimum, a maximum for mae and rmse).`}}
      {{- end }}
      {{- end }}
      {{- with $a.labelCoverageLow }}
      {{- if .enabled }}
      - alert: KubeloopLabelCoverageLow
        expr: |-
          max by (namespace, monitor) (kubeloop_monitor_label_coverage) < {{ .min }}
        for: {{ .for }}
        labels:
          {{- include "kubeloop.alertLabels" (list .severity $extra) | nindent 10 }}
        annotations:
          summary: {{`Few predictions have ground truth for monitor {{ $labels.namespace }}/{{ $labels.monitor }}`}}
          description: >-
            {{`Only {{ $value | humanizePercentage }} of the predictions watched by
            {{ $labels.namespace }}/{{ $labels.monitor }} have a label joined (below `}}{{ .min }}{{`): realized
            performance rests on few rows; check that feedback still arrives.`}}
      {{- end }}
      {{- end }}
      {{- with $a.fairnessBreach }}
      {{- if .enabled }}
      # Fairness metrics are differences between groups: the threshold is the largest allowed.
      - alert: KubeloopFairnessBreach
        expr: |-
          max by (namespace, monitor, metric) (kubeloop_monitor_fairness)
            > on (namespace, monitor, metric)
          max by (namespace, monitor, metric) (kubeloop_monitor_fairness_threshold)
        for: {{ .for }}
        labels:
          {{- include "kubeloop.alertLabels" (list .severity $extra) | nindent 10 }}
        annotations:
          summary: {{`Fairness threshold breached for monitor {{ $labels.namespace }}/{{ $labels.monitor }}`}}
          description: >-
            {{`The {{ $labels.metric }} between groups of the model watched by
            {{ $labels.namespace }}/{{ $labels.monitor }} is {{ $value | printf "%.4g" }}, above the
            allowed{{ with printf "max(kubeloop_monitor_fairness_threshold{namespace='%s',monitor='%s',metric='%s'})" $labels.namespace $labels.monitor $labels.metric | query }}
            {{ . | first | value | printf "%.4g" }}{{ end }}.`}}
      {{- end }}
      {{- end }}
{{- end }}
{{- $on = false }}
{{- range $name := $serving }}{{ if (index $a $name).enabled }}{{ $on = true }}{{ end }}{{ end }}
{{- if $on }}
  - name: kubeloop-serving
    rules:
      {{- with $a.servingErrorRate }}
      {{- if .enabled }}
      # Per ModelDeployment (`model`), all tracks that answer clients: a shadow's answers are discarded.
      - alert: KubeloopServingErrorRateHigh
        expr: |-
          (
            sum by (namespace, model) (rate(kubeloop_serving_requests_total{track!="shadow", code=~"5.."}[{{ .window }}]))
          /
            sum by (namespace, model) (rate(kubeloop_serving_requests_total{track!="shadow"}[{{ .window }}]))
          ) > {{ .threshold }}
          and on (namespace, model)
          sum by (namespace, model) (rate(kubeloop_serving_requests_total{track!="shadow"}[{{ .window }}])) >= {{ .minRequestsPerSecond }}
        for: {{ .for }}
        labels:
          {{- include "kubeloop.alertLabels" (list .severity $extra) | nindent 10 }}
        annotations:
          summary: {{`ModelDeployment {{ $labels.namespace }}/{{ $labels.model }} answers with server errors`}}
          description: >-
            {{`{{ $value | humanizePercentage }} of the requests to ModelDeployment
            {{ $labels.namespace }}/{{ $labels.model }} got a 5xx answer over the last `}}{{ .window }}{{`
            (threshold `}}{{ .threshold }}{{`).`}}
      {{- end }}
      {{- end }}
      {{- with $a.servingLatencyP99 }}
      {{- if .enabled }}
      - alert: KubeloopServingLatencyHigh
        expr: |-
          histogram_quantile(0.99,
            sum by (namespace, model, le) (rate(kubeloop_serving_request_duration_seconds_bucket{track!="shadow"}[{{ .window }}]))
          ) > {{ .thresholdSeconds }}
          and on (namespace, model)
          sum by (namespace, model) (rate(kubeloop_serving_request_duration_seconds_count{track!="shadow"}[{{ .window }}])) >= {{ .minRequestsPerSecond }}
        for: {{ .for }}
        labels:
          {{- include "kubeloop.alertLabels" (list .severity $extra) | nindent 10 }}
        annotations:
          summary: {{`ModelDeployment {{ $labels.namespace }}/{{ $labels.model }} answers slowly (p99)`}}
          description: >-
            {{`The 99th percentile of inference latency of ModelDeployment
            {{ $labels.namespace }}/{{ $labels.model }} is {{ $value | humanizeDuration }} over the last
            `}}{{ .window }}{{` (threshold `}}{{ .thresholdSeconds }}{{`s).`}}
      {{- end }}
      {{- end }}
      {{- with $a.canaryRolledBack }}
      {{- if .enabled }}
      # RolledBack: the canary failed its checks (Aborted is a user's decision, not a failure). It stays
      # so until the canary model changes or the canary is removed.
      - alert: KubeloopCanaryRolledBack
        expr: |-
          max by (namespace, modeldeployment) (kubeloop_modeldeployment_rollout_phase{phase="RolledBack"}) == 1
        for: {{ .for }}
        labels:
          {{- include "kubeloop.alertLabels" (list .severity $extra) | nindent 10 }}
        annotations:
          summary: {{`Canary of ModelDeployment {{ $labels.namespace }}/{{ $labels.modeldeployment }} was rolled back`}}
          description: >-
            {{`The canary of ModelDeployment {{ $labels.namespace }}/{{ $labels.modeldeployment }} failed
            its checks and was rolled back: stable serves every request. Last check values:{{ range printf "kubeloop_modeldeployment_canary_check_value{namespace='%s',modeldeployment='%s'}" $labels.namespace $labels.modeldeployment | query | sortByLabel "check" }}
            {{ .Labels.check }}={{ .Value | printf "%.4g" }}{{ end }}. See status.rollout.`}}
      {{- end }}
      {{- end }}
{{- end }}
{{- end -}}

{{/* "true" when the PrometheusRule is rendered: alerts.prometheusRule.enabled true, or auto and the cluster
serves the kind (the group alone is not enough: some installs bring only ServiceMonitor and PodMonitor). */}}
{{- define "kubeloop.prometheusRuleEnabled" -}}
{{- $enabled := toString .Values.alerts.prometheusRule.enabled -}}
{{- if or (eq $enabled "true") (and (eq $enabled "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/PrometheusRule")) -}}
true
{{- end -}}
{{- end -}}

{{/* An alert's labels: (list severity extraLabels); severity wins. */}}
{{- define "kubeloop.alertLabels" -}}
{{- $labels := merge (dict "severity" (index . 0)) (index . 1) -}}
{{- toYaml $labels -}}
{{- end -}}
