{{/* Names, labels and the pieces every workload shares. */}}

{{- define "paretopo.fullname" -}}
{{- printf "%s-paretopo" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "paretopo.labels" -}}
app.kubernetes.io/name: paretopo
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "archive") */}}
{{- define "paretopo.selector" -}}
app.kubernetes.io/name: paretopo
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "paretopo.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .name (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}

{{- define "paretopo.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s-redis:6379/0" (include "paretopo.fullname" .) -}}
{{- else -}}
{{- required "redis.externalUrl is required when redis.enabled is false" .Values.redis.externalUrl -}}
{{- end -}}
{{- end -}}

{{- define "paretopo.secretName" -}}
{{- default (printf "%s-archive" (include "paretopo.fullname" .)) .Values.archive.existingSecret -}}
{{- end -}}

{{/* Pod-level security: non-root user, RuntimeDefault seccomp. */}}
{{- define "paretopo.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security: no privilege, no capability, read-only root. */}}
{{- define "paretopo.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Scheduling of one component from its values block: (dict "v" .Values.rollout) */}}
{{- define "paretopo.scheduling" -}}
{{- with .v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Resources plus the GPU count as a limit (the device plugin's resource). */}}
{{- define "paretopo.resources" -}}
{{- $res := deepCopy (default dict .v.resources) -}}
{{- if and .v.gpu (gt (int .v.gpu.count) 0) -}}
{{- $limits := default dict $res.limits -}}
{{- $_ := set $limits (default "nvidia.com/gpu" .v.gpu.resourceName) (int .v.gpu.count) -}}
{{- $_ := set $res "limits" $limits -}}
{{- end -}}
{{- toYaml $res -}}
{{- end -}}
