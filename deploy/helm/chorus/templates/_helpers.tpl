{{- define "chorus.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "chorus.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "chorus.labels" -}}
app.kubernetes.io/name: {{ include "chorus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "chorus.selector" -}}
app.kubernetes.io/name: {{ include "chorus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "chorus.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "chorus.secretName" -}}
{{- .Values.existingSecret | default (include "chorus.fullname" .) -}}
{{- end -}}

{{- define "chorus.useKeda" -}}
{{- if eq .Values.autoscaling.mode "keda" -}}true
{{- else if and (eq .Values.autoscaling.mode "auto") (.Capabilities.APIVersions.Has "keda.sh/v1alpha1/ScaledObject") -}}true
{{- end -}}
{{- end -}}

{{/* Environment every Chorus process reads: connections from the Secret, never inline. */}}
{{- define "chorus.env" -}}
- name: CHORUS_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "chorus.secretName" . }}
      key: database-url
- name: CHORUS_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "chorus.secretName" . }}
      key: broker-url
- name: CHORUS_AUDIT_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "chorus.secretName" . }}
      key: audit-key
      optional: true
- name: CHORUS_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: CHORUS_POOLS
  value: {{ include "chorus.poolsJson" . | quote }}
- name: CHORUS_DATA_DIR
  value: /data
{{- end -}}

{{- define "chorus.dataVolume" -}}
- name: data
  {{- if .Values.storage.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.storage.existingClaim }}
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- end -}}

{{- define "chorus.poolsJson" -}}
{{- $names := list -}}
{{- range .Values.pools }}{{ $names = append $names .name }}{{ end -}}
{{- toJson $names -}}
{{- end -}}

{{- define "chorus.podSpecCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
