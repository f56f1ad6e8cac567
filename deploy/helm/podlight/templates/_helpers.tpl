{{/* The release's name for its objects: "podlight" for a release called podlight. */}}
{{- define "podlight.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The policies ConfigMap's name, also what the agent watches and its Role names. */}}
{{- define "podlight.policiesConfigMap" -}}
{{- printf "%s-policies" (include "podlight.fullname" .) -}}
{{- end -}}

{{/* What selects the pods: never changes after install (a DaemonSet's selector cannot). */}}
{{- define "podlight.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The recommended labels, on every object. */}}
{{- define "podlight.labels" -}}
{{ include "podlight.selectorLabels" . }}
app.kubernetes.io/part-of: podlight
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.labels and metadata.annotations of every object. */}}
{{- define "podlight.metadata" -}}
labels:
  {{- include "podlight.labels" . | nindent 2 }}
{{- with .Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "podlight.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The policy file's name in the ConfigMap. */}}
{{- define "podlight.policyFile" -}}
{{- printf "%s.wasm%s" .Values.policy.name (ternary ".gz" "" .Values.policy.gzip) -}}
{{- end -}}
