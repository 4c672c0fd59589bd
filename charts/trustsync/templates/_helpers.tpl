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
