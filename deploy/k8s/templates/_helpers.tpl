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

{{/* The Redis URL a service is given. The chart's Redis needs its password, which the
container gets as PARETOPO_REDIS_PASSWORD (see paretopo.redisEnv) and Kubernetes expands
inside this value: it never appears in a manifest. */}}
{{- define "paretopo.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://:$(PARETOPO_REDIS_PASSWORD)@%s-redis:6379/0" (include "paretopo.fullname" .) -}}
{{- else -}}
{{- required "redis.externalUrl is required when redis.enabled is false" .Values.redis.externalUrl -}}
{{- end -}}
{{- end -}}

{{- define "paretopo.redisSecretName" -}}
{{- default (printf "%s-redis" (include "paretopo.fullname" .)) .Values.redis.auth.existingSecret -}}
{{- end -}}

{{/* Env entries giving a container the Redis URL under `name`: the password from the Secret
first (a variable must be defined before a value that refers to it), then the URL.
(dict "root" $ "name" "PARETOPO_ROLLOUT_REDIS_URL") */}}
{{- define "paretopo.redisEnv" -}}
{{- if .root.Values.redis.enabled }}
- name: PARETOPO_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "paretopo.redisSecretName" .root }}
      key: password
{{- end }}
- name: {{ .name }}
  value: {{ include "paretopo.redisUrl" .root | quote }}
{{- end -}}

{{/* A PodDisruptionBudget for one component: (dict "root" $ "component" "archive") */}}
{{- define "paretopo.pdb" -}}
{{- if .root.Values.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "paretopo.fullname" .root }}-{{ .component }}
  labels:
    {{- include "paretopo.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  maxUnavailable: {{ index .root.Values.podDisruptionBudget.maxUnavailable .component }}
  selector:
    matchLabels:
      {{- include "paretopo.selector" (dict "root" .root "component" .component) | nindent 6 }}
{{- end }}
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
