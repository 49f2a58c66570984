{{/* Pieces of the learner's Job and JobSet (learner.yaml). */}}

{{/* The learner's env: endpoints and archive token (they override the run config's
`services:` block, services/learner/env.py) and the evaluation sets' directory. */}}
{{- define "paretopo.learnerEnv" -}}
{{- $fullname := include "paretopo.fullname" . -}}
{{- include "paretopo.redisEnv" (dict "root" . "name" "PARETOPO_LEARNER_REDIS_URL") }}
{{- if .Values.archive.enabled }}
- name: PARETOPO_LEARNER_ARCHIVE
  value: {{ printf "%s-archive:%v" $fullname .Values.archive.service.grpcPort | quote }}
- name: PARETOPO_LEARNER_ARCHIVE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "paretopo.secretName" . }}
      key: write-token
{{- end }}
- name: PARETOPO_LEARNER_METRICS_HOST
  value: "0.0.0.0"
- name: PARETOPO_LEARNER_METRICS_PORT
  value: {{ .Values.learner.service.port | quote }}
# The paper's evaluation sets (math500, nq, ...), read by name (paretopo/datasets/registry.py).
- name: PARETOPO_SHARED_DATA
  value: {{ .Values.learner.sharedDataDir | quote }}
{{- end -}}

{{- define "paretopo.learnerPod" }}
{{- $root := .root }}
{{- $v := $root.Values.learner }}
{{- $fullname := include "paretopo.fullname" $root }}
{{- $image := include "paretopo.image" (dict "root" $root "name" $v.image) }}
{{- /* The run's endpoints, token and data directory; the same for the config check. */}}
{{- $env := include "paretopo.learnerEnv" $root }}
metadata:
  labels:
    {{- include "paretopo.labels" $root | nindent 4 }}
    app.kubernetes.io/component: learner
  annotations:
    checksum/run-config: {{ include (print $root.Template.BasePath "/configmap-run.yaml") $root | sha256sum }}
spec:
  # Required by the Job's podFailurePolicy; a failed attempt is a new pod (backoffLimit).
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext:
    {{- include "paretopo.podSecurityContext" $root | nindent 4 }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- include "paretopo.scheduling" (dict "v" $v) | nindent 2 }}
  # SIGTERM (eviction, deletion): the run finishes its step, writes its checkpoint and exits.
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  initContainers:
    # A bad run configuration fails the run at once (exit 2: podFailurePolicy FailJob)
    # instead of being retried backoffLimit times.
    - name: check-config
      image: {{ $image }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command: ["python", "-m", "services.learner", "--config", "/config/run.yaml", "--dry-run"]
      env:
        {{- $env | nindent 8 }}
      resources:
        requests: {cpu: 100m, memory: 512Mi}
        limits: {memory: 4Gi}
      securityContext:
        {{- include "paretopo.containerSecurityContext" $root | nindent 8 }}
      volumeMounts:
        - name: run-config
          mountPath: /config
          readOnly: true
        - name: tmp
          mountPath: /tmp
  containers:
    - name: learner
      image: {{ $image }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      # One process per GPU. torchrun forwards SIGTERM to them and waits 60 s less than the
      # grace period before it kills them.
      command:
        - torchrun
        {{- if .multi }}
        - --nnodes={{ $v.nodes }}
        - --nproc-per-node={{ .nproc }}
        - --node-rank=$(TORCHRUN_NODE_RANK)
        - --master-addr={{ .master }}
        - --master-port={{ $v.rendezvousPort }}
        {{- else }}
        - --standalone
        - --nnodes=1
        - --nproc-per-node={{ .nproc }}
        {{- end }}
        - --shutdown-timeout={{ sub (int $v.terminationGracePeriodSeconds) 60 }}
        - -m
        - services.learner
        - --config
        - /config/run.yaml
      env:
        {{- if .multi }}
        # Node rank = the pod's completion index in the Indexed Job (0 .. nodes-1).
        - name: TORCHRUN_NODE_RANK
          valueFrom:
            fieldRef:
              fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']
        {{- end }}
        {{- $env | nindent 8 }}
      ports:
        - name: http
          containerPort: {{ $v.service.port }}
        {{- if .multi }}
        - name: rendezvous
          containerPort: {{ $v.rendezvousPort }}
        {{- end }}
      {{- if .multi }}
      # Only node 0 holds rank 0, which serves /healthz: the other nodes report healthy.
      {{- $check := printf "[ \"$TORCHRUN_NODE_RANK\" != 0 ] || exec python -m paretopo.healthcheck http http://127.0.0.1:%v/healthz" $v.service.port }}
      startupProbe:
        exec:
          command: ["sh", "-c", {{ $check | quote }}]
        periodSeconds: 10
        timeoutSeconds: 10
        failureThreshold: 90
      livenessProbe:
        exec:
          command: ["sh", "-c", {{ $check | quote }}]
        periodSeconds: 15
        timeoutSeconds: 10
      readinessProbe:
        exec:
          command: ["sh", "-c", {{ $check | quote }}]
        periodSeconds: 10
        timeoutSeconds: 10
      {{- else }}
      # Loading the model and initialising DeepSpeed takes minutes: the startup probe covers it.
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 10
        failureThreshold: 90
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 15
        timeoutSeconds: 5
      readinessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 10
        timeoutSeconds: 5
      {{- end }}
      resources:
        {{- include "paretopo.resources" (dict "v" $v) | nindent 8 }}
      securityContext:
        {{- include "paretopo.containerSecurityContext" $root | nindent 8 }}
      volumeMounts:
        - name: run-config
          mountPath: /config
          readOnly: true
        - name: data
          mountPath: /data
        - name: tmp
          mountPath: /tmp
        - name: shm
          mountPath: /dev/shm
  volumes:
    - name: run-config
      configMap:
        name: {{ $fullname }}-run
    - name: data
      persistentVolumeClaim:
        claimName: {{ default (printf "%s-data" $fullname) $root.Values.data.existingClaim }}
    - name: tmp
      emptyDir: {}
    - name: shm
      emptyDir:
        medium: Memory
        sizeLimit: {{ $v.shmSize }}
{{- end }}
{{- define "paretopo.learnerFailurePolicy" }}
podFailurePolicy:
  rules:
    # The config check's exit 2: a bad run configuration; no retry can fix it.
    - action: FailJob
      onExitCodes:
        containerName: check-config
        operator: In
        values: [2]
    # Evicted, preempted or its node drained: retry (from the checkpoint) without counting.
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
{{- end }}
