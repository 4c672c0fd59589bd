{{- define "trustsync.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "trustsync.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "trustsync.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "trustsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "trustsync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "trustsync.policyConfigMap" -}}
{{- default (printf "%s-policies" (include "trustsync.fullname" .)) .Values.policies.existingConfigMap -}}
{{- end -}}

{{/* The trustsync image: by digest when image.digest is set, else by tag. */}}
{{- define "trustsync.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
The checkov findings this workload keeps on purpose, each with its reason, as checkov's
skip annotations (checkov.io/skipN: CHECK=reason). Only the ones the values bring about.
*/}}
{{- define "trustsync.checkovSkips" -}}
{{- $skips := list -}}
{{- $skips = append $skips "CKV_K8S_15=imagePullPolicy IfNotPresent: a released tag or digest never moves, and Always would make every restart depend on the registry" -}}
{{- $gitByTag := and (eq .Values.policies.source "git") (not (contains "@" .Values.policies.git.image)) -}}
{{- if or (not .Values.image.digest) $gitByTag -}}
{{- $skips = append $skips "CKV_K8S_43=image by tag: set image.digest (and policies.git.image to name@digest) to pin by digest" -}}
{{- end -}}
{{- if .Values.azure.existingSecret -}}
{{- $skips = append $skips "CKV_K8S_35=azure.existingSecret: the Azure SDK convention reads AZURE_CLIENT_SECRET from the environment; prefer workload identity or azure.certificateSecret (a mounted file)" -}}
{{- end -}}
{{- range $i, $s := $skips }}
checkov.io/skip{{ add1 $i }}: {{ $s | quote }}
{{- end }}
{{- end -}}

{{/* Where the audit signing key is mounted from its Secret (audit.signingKeySecret). */}}
{{- define "trustsync.auditSigningKeyFile" -}}
/var/run/secrets/trustsync/audit/signing-key.pem
{{- end }}

{{/*
"true" when the audit log is kept in S3 (audit.store: s3): replicas contend for a lease in
the bucket, the log's local copy is a working copy on an emptyDir, and no claim is made.
*/}}
{{- define "trustsync.s3" -}}
{{- if eq (.Values.audit.store | default "file") "s3" -}}true{{- end -}}
{{- end -}}

{{/* The Deployment's replicas: replicaCount, or by audit.store (file 1, s3 2). */}}
{{- define "trustsync.replicas" -}}
{{- if kindIs "invalid" .Values.replicaCount -}}
{{- ternary 2 1 (eq (include "trustsync.s3" .) "true") -}}
{{- else -}}
{{- .Values.replicaCount -}}
{{- end -}}
{{- end -}}

{{/*
config.audit.s3 from the chart's audit.s3 values (audit.store: s3), or nothing. The lease
rule JSON Schema cannot state is checked here, as trustsync checks it at start (so that a
release it would refuse never installs): durationSeconds at least three times
renewSeconds, which keeps renewSeconds below durationSeconds.
*/}}
{{- define "trustsync.auditS3Config" -}}
{{- if eq (include "trustsync.s3" .) "true" -}}
{{- $v := .Values.audit.s3 -}}
{{- if lt (float64 $v.lease.durationSeconds) (mulf 3 $v.lease.renewSeconds) -}}
{{- fail (printf "audit.s3.lease: durationSeconds (%v) must be at least three times renewSeconds (%v): the leader stops writing renewSeconds before a standby may take its lease, and must have renewed more than once by then" $v.lease.durationSeconds $v.lease.renewSeconds) -}}
{{- end -}}
{{- $s3 := dict "bucket" (required "audit.s3.bucket is required with audit.store: s3" $v.bucket) "prefix" $v.prefix "lease" (dict "durationSeconds" $v.lease.durationSeconds "renewSeconds" $v.lease.renewSeconds) -}}
{{- with $v.region -}}
{{- $_ := set $s3 "region" . -}}
{{- end -}}
{{- with $v.objectLock -}}
{{- $_ := set $s3 "objectLock" (dict "mode" .mode "retentionDays" .retentionDays) -}}
{{- end -}}
{{- toYaml $s3 -}}
{{- end -}}
{{- end -}}

{{/* With audit.store: s3, replicas prefer different nodes: a node failure leaves a standby. */}}
{{- define "trustsync.spreadAcrossNodes" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "trustsync.selectorLabels" . | nindent 12 }}
{{- end -}}
