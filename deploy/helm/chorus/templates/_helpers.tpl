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
# On its own, not in broker-url: settings put it into the URLs percent-encoded, whatever it holds.
- name: CHORUS_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "chorus.secretName" . }}
      key: redis-password
      optional: true
- name: CHORUS_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: CHORUS_POOLS
  value: {{ include "chorus.poolsJson" . | quote }}
- name: CHORUS_DATA_DIR
  value: /data
{{- end -}}

{{/* The claim every pod mounts at /data: the user's, the chart's own, or none (refused unless podLocal). */}}
{{- define "chorus.dataClaim" -}}
{{- if .Values.storage.existingClaim -}}
{{ .Values.storage.existingClaim }}
{{- else if .Values.storage.persistence.enabled -}}
{{ include "chorus.fullname" . }}-data
{{- end -}}
{{- end -}}

{{- define "chorus.dataVolume" -}}
- name: data
  {{- with include "chorus.dataClaim" . }}
  persistentVolumeClaim:
    claimName: {{ . }}
  {{- else }}
  {{- if not .Values.storage.podLocal }}
  {{- fail "storage: the server and the workers are different pods and must share /data (FILE inputs, output files): set storage.existingClaim to a ReadWriteMany claim, or storage.persistence.enabled=true, or storage.podLocal=true to accept that files break across pods" }}
  {{- end }}
  emptyDir: {}
  {{- end }}
{{- end -}}

{{/*
Extra environment of one component: global `extraEnv`/`envFrom`, then the component's own, then the flow
secrets from `flowSecrets` (SECRET_* variables from a Secret, or a Secret mounted as CHORUS_SECRETS_DIR).
Called with (list $root $component).
*/}}
{{- define "chorus.extraEnv" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- with $root.Values.flowSecrets.directorySecret }}
- name: CHORUS_SECRETS_DIR
  value: /etc/chorus/secrets
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with $component.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "chorus.envFrom" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $sources := concat ($root.Values.envFrom | default list) ($component.envFrom | default list) -}}
{{- with $root.Values.flowSecrets.envSecret }}
{{- $sources = append $sources (dict "secretRef" (dict "name" .)) -}}
{{- end }}
{{- with $sources }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "chorus.extraVolumeMounts" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- with $root.Values.flowSecrets.directorySecret }}
- name: flow-secrets
  mountPath: /etc/chorus/secrets
  readOnly: true
{{- end }}
{{- with concat ($root.Values.extraVolumeMounts | default list) ($component.extraVolumeMounts | default list) }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "chorus.extraVolumes" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- with $root.Values.flowSecrets.directorySecret }}
- name: flow-secrets
  secret:
    secretName: {{ . }}
    # Group-readable only (fsGroup): a scripts pool's script user (another uid) cannot read them.
    defaultMode: 0440
{{- end }}
{{- with concat ($root.Values.extraVolumes | default list) ($component.extraVolumes | default list) }}
{{ toYaml . }}
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
