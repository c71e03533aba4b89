{{- define "castnet.name" -}}castnet{{- end -}}

{{- define "castnet.labels" -}}
app.kubernetes.io/name: castnet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "castnet.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "castnet.agentSA" -}}{{ .Release.Name }}-agent{{- end -}}
{{- define "castnet.controllerSA" -}}{{ .Release.Name }}-controller{{- end -}}

{{- define "castnet.agentSocket" -}}{{ .Values.agent.socketDir }}/agent.sock{{- end -}}
{{- define "castnet.poolIndexFile" -}}{{ .Values.agent.stateDir }}/pool-index{{- end -}}

{{- /* The metrics sidecar's --listen: agent.metrics.address and port, IPv6 in brackets. */ -}}
{{- define "castnet.agentMetricsListen" -}}
{{- $a := .Values.agent.metrics.address -}}
{{- if contains ":" $a }}[{{ $a }}]{{ else }}{{ $a }}{{ end }}:{{ .Values.agent.metrics.port }}
{{- end -}}
