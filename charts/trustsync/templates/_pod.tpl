{{/*
The pod of both modes: `run` in a Deployment (mode: controller), or `apply
--auto-approve` in a CronJob's Job (mode: schedule). Same identity, config, policies and
audit volume either way (with audit.store: s3 an emptyDir for the working copy: `apply`
takes the same lease and appends to the same chain in the bucket). In schedule mode
git-sync runs once, as an init container, so that the Job ends when trustsync does.
*/}}
{{- define "trustsync.pod" -}}
{{- $schedule := eq .Values.mode "schedule" -}}
serviceAccountName: {{ include "trustsync.serviceAccountName" . }}
# No Kubernetes API token: trustsync never calls the API server; the AWS and Entra
# workload-identity webhooks mount their own projected tokens.
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: 60
{{- if $schedule }}
restartPolicy: Never
{{- end }}
{{- if and $schedule (eq .Values.policies.source "git") }}
initContainers:
  {{- include "trustsync.gitSync" (dict "root" . "oneTime" true) | nindent 2 }}
{{- end }}
containers:
  - name: trustsync
    image: {{ include "trustsync.image" . | quote }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args:
      - --config=/etc/trustsync/trustsync.yaml
      - --log-format={{ .Values.logFormat }}
      {{- if $schedule }}
      - apply
      - --auto-approve
      {{- else }}
      - run
      {{- end }}
      {{- if eq .Values.policies.source "git" }}
      - --policies=/policies/repo/{{ .Values.policies.git.subPath }}
      {{- else }}
      - --policies=/policies
      {{- end }}
    env:
      {{- with .Values.azure.tenantId }}
      - name: AZURE_TENANT_ID
        value: {{ . | quote }}
      {{- end }}
      {{- with .Values.azure.clientId }}
      - name: AZURE_CLIENT_ID
        value: {{ . | quote }}
      {{- end }}
      {{- with .Values.aws.region }}
      - name: AWS_REGION
        value: {{ . | quote }}
      {{- end }}
      {{- if .Values.azure.certificateSecret }}
      - name: AZURE_CLIENT_CERTIFICATE_PATH
        value: /var/run/secrets/trustsync/entra/{{ .Values.azure.certificateKey }}
      {{- end }}
    {{- with .Values.azure.existingSecret }}
    envFrom:
      - secretRef:
          name: {{ . }}
    {{- end }}
    {{- if not $schedule }}
    ports:
      - name: http
        containerPort: 8080
    livenessProbe:
      httpGet: {path: /healthz, port: http}
      periodSeconds: 10
    readinessProbe:
      httpGet: {path: /readyz, port: http}
      periodSeconds: 10
    {{- end }}
    resources:
      {{- toYaml .Values.resources | nindent 6 }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    volumeMounts:
      - {name: config, mountPath: /etc/trustsync, readOnly: true}
      - {name: policies, mountPath: /policies, readOnly: true}
      - {name: audit, mountPath: /var/lib/trustsync}
      - {name: tmp, mountPath: /tmp}
      {{- if .Values.azure.certificateSecret }}
      - {name: entra-certificate, mountPath: /var/run/secrets/trustsync/entra, readOnly: true}
      {{- end }}
      {{- if .Values.audit.signingKeySecret.name }}
      # The audit signing key: from its Secret, read-only, outside the config's ConfigMap.
      - {name: audit-signing-key, mountPath: /var/run/secrets/trustsync/audit, readOnly: true}
      {{- end }}
  {{- if and (not $schedule) (eq .Values.policies.source "git") }}
  {{- include "trustsync.gitSync" (dict "root" . "oneTime" false) | nindent 2 }}
  {{- end }}
volumes:
  - name: config
    configMap:
      name: {{ include "trustsync.fullname" . }}-config
  - name: policies
    {{- if eq .Values.policies.source "git" }}
    emptyDir: {}
    {{- else }}
    configMap:
      name: {{ include "trustsync.policyConfigMap" . }}
    {{- end }}
  - name: audit
    {{- if eq (include "trustsync.s3" .) "true" }}
    # The log is in S3; this is the working copy, rebuilt from the bucket at every start.
    emptyDir: {}
    {{- else if .Values.auditVolume.existingClaim }}
    persistentVolumeClaim:
      claimName: {{ .Values.auditVolume.existingClaim }}
    {{- else if .Values.auditVolume.ephemeral }}
    emptyDir: {}
    {{- else }}
    persistentVolumeClaim:
      claimName: {{ include "trustsync.fullname" . }}-audit
    {{- end }}
  - name: tmp
    emptyDir: {}
  {{- with .Values.azure.certificateSecret }}
  - name: entra-certificate
    secret:
      secretName: {{ . }}
      defaultMode: 0400
  {{- end }}
  {{- with .Values.audit.signingKeySecret }}
  {{- if .name }}
  - name: audit-signing-key
    secret:
      secretName: {{ .name }}
      items:
        - {key: {{ .key | quote }}, path: signing-key.pem}
      defaultMode: 0400
  {{- end }}
  {{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $affinity := deepCopy (.Values.affinity | default dict) }}
{{- if and (not $schedule) (eq (include "trustsync.s3" .) "true") (not (hasKey $affinity "podAntiAffinity")) }}
{{- $affinity = merge $affinity (include "trustsync.spreadAcrossNodes" . | fromYaml) }}
{{- end }}
{{- with $affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The git-sync container: a sidecar following the repository, or (oneTime) one clone. */}}
{{- define "trustsync.gitSync" -}}
{{- $v := .root.Values -}}
- name: git-sync
  image: {{ $v.policies.git.image }}
  args:
    - --repo={{ $v.policies.git.repo }}
    - --ref={{ $v.policies.git.ref }}
    - --root=/policies
    - --link=repo
    {{- if .oneTime }}
    - --one-time
    {{- else }}
    - --period={{ $v.policies.git.period }}
    - --http-bind=:8081
    {{- end }}
  {{- with $v.policies.git.credentialsSecret }}
  envFrom:
    - secretRef:
        name: {{ . }}
  {{- end }}
  {{- if not .oneTime }}
  # git-sync's / answers 5xx until the first sync is complete, 200 after.
  ports:
    - name: git-sync
      containerPort: 8081
  startupProbe:
    httpGet: {path: /, port: git-sync}
    periodSeconds: 5
    failureThreshold: 60
  livenessProbe:
    httpGet: {path: /, port: git-sync}
    periodSeconds: 30
  readinessProbe:
    httpGet: {path: /, port: git-sync}
    periodSeconds: 10
  {{- end }}
  resources:
    requests: {cpu: 10m, memory: 32Mi}
    limits: {cpu: 200m, memory: 128Mi}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - {name: policies, mountPath: /policies}
    - {name: tmp, mountPath: /tmp}
{{- end }}
