{{/* ------------------------------------------------------------------------------------------
Names and labels
------------------------------------------------------------------------------------------- */}}

{{- define "flotilla.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; a component's objects are "<fullname>-<component>". */}}
{{- define "flotilla.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "flotilla.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "flotilla.labels" -}}
app.kubernetes.io/name: {{ include "flotilla.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "flotilla.baseLabels" . }}
{{- end }}

{{/* Labels on every object but the selector ones. */}}
{{- define "flotilla.baseLabels" -}}
helm.sh/chart: {{ include "flotilla.chart" . }}
app.kubernetes.io/part-of: flotilla
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of a component: (dict "root" $ "component" "guard" ["model" "name"]). */}}
{{- define "flotilla.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flotilla.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- with .model }}
flotilla.dev/model: {{ . }}
{{- end }}
{{- end }}

{{/* Every label of a component's objects and pods. */}}
{{- define "flotilla.componentLabels" -}}
{{ include "flotilla.baseLabels" .root }}
{{ include "flotilla.selectorLabels" . }}
{{- end }}

{{/* Object name of a component: "<fullname>-<component>" (inference: "<fullname>-inference-<model>"). */}}
{{- define "flotilla.componentName" -}}
{{- if .model -}}
{{- printf "%s-%s-%s" (include "flotilla.fullname" .root) .component .model | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" (include "flotilla.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end }}

{{/* The Service's fully qualified DNS name: (dict "root" $ "name" "<service name>"). */}}
{{- define "flotilla.serviceFQDN" -}}
{{- printf "%s.%s.svc.%s" .name .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end }}

{{/* JSON list of the CPU-tier components this release runs: gateway, guard (unless guard.enabled=false), rag. */}}
{{- define "flotilla.cpuComponents" -}}
{{- $out := list "gateway" -}}
{{- if .Values.guard.enabled }}{{ $out = append $out "guard" }}{{ end -}}
{{- $out = append $out "rag" -}}
{{- toJson $out -}}
{{- end }}

{{- define "flotilla.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "flotilla.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "registry/repository:tag" of a component image: (dict "root" $ "image" .Values.guard.image). */}}
{{- define "flotilla.image" -}}
{{- $registry := .image.registry | default .root.Values.image.registry -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end }}

{{/* ------------------------------------------------------------------------------------------
mTLS material: every pod mounts its own Secret (ca.crt, tls.crt, tls.key) at /etc/flotilla/tls.
------------------------------------------------------------------------------------------- */}}

{{/* Name of a component's TLS Secret: (dict "root" $ "component" "guard" ["model" "name"]). */}}
{{- define "flotilla.tlsSecretName" -}}
{{- printf "%s-tls" (include "flotilla.componentName" .) -}}
{{- end }}

{{/* DNS names of a component's certificate: its Services' names, short and qualified, and localhost. */}}
{{- define "flotilla.tlsDNSNames" -}}
{{- $name := include "flotilla.componentName" . -}}
{{- $ns := .root.Release.Namespace -}}
{{- $names := list $name (printf "%s.%s" $name $ns) (printf "%s.%s.svc" $name $ns) (include "flotilla.serviceFQDN" (dict "root" .root "name" $name)) "localhost" -}}
{{- toJson $names -}}
{{- end }}

{{/* Env vars pointing a service at its TLS files: (dict "prefix" "FLOTILLA_GUARD_"). */}}
{{- define "flotilla.tlsEnv" -}}
- name: {{ .prefix }}TLS_CA
  value: /etc/flotilla/tls/ca.crt
- name: {{ .prefix }}TLS_CERT
  value: /etc/flotilla/tls/tls.crt
- name: {{ .prefix }}TLS_KEY
  value: /etc/flotilla/tls/tls.key
{{- end }}

{{/* ------------------------------------------------------------------------------------------
Pod building blocks
------------------------------------------------------------------------------------------- */}}

{{/* Env every Flotilla container gets: (dict "root" $ "prefix" "FLOTILLA_GUARD_" "port" 50052). */}}
{{- define "flotilla.commonEnv" -}}
- name: FLOTILLA_HOME
  value: /tmp/flotilla
- name: {{ .prefix }}HOST
  value: {{ .root.Values.listenHost | quote }}
- name: {{ .prefix }}PORT
  value: {{ .port | quote }}
- name: {{ .prefix }}LOG_LEVEL
  value: {{ .root.Values.logging.level | quote }}
- name: {{ .prefix }}LOG_JSON
  value: {{ .root.Values.logging.json | quote }}
{{ include "flotilla.tlsEnv" . }}
{{- end }}

{{/* Volumes every Flotilla pod has: its TLS Secret and a writable /tmp. */}}
{{- define "flotilla.commonVolumes" -}}
- name: tls
  secret:
    secretName: {{ include "flotilla.tlsSecretName" . }}
    defaultMode: 0440
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- end }}

{{- define "flotilla.commonVolumeMounts" -}}
- name: tls
  mountPath: /etc/flotilla/tls
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Pod-level settings: service account, security context, pull secrets. */}}
{{- define "flotilla.podSpecCommon" -}}
serviceAccountName: {{ include "flotilla.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Scheduling of a component: (dict "values" .Values.guard). */}}
{{- define "flotilla.scheduling" -}}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* preStop: wait until endpoint removal has reached every client before SIGTERM starts the drain. */}}
{{- define "flotilla.preStop" -}}
lifecycle:
  preStop:
    {{- if semverCompare ">=1.30-0" .Capabilities.KubeVersion.Version }}
    sleep:
      seconds: {{ .Values.drain.preStopSeconds }}
    {{- else }}
    exec:
      command: ["sleep", "{{ .Values.drain.preStopSeconds }}"]
    {{- end }}
{{- end }}

{{/* terminationGracePeriodSeconds: (dict "root" $ "drain" <component drain grace seconds>). */}}
{{- define "flotilla.terminationGrace" -}}
{{- add .root.Values.drain.preStopSeconds .drain .root.Values.drain.marginSeconds -}}
{{- end }}

{{/* Readiness/startup over gRPC health with mTLS (native grpc probes cannot present a client cert). */}}
{{- define "flotilla.grpcHealthExec" -}}
exec:
  command: ["python", "-m", "flotilla.healthcheck", "--env-prefix", "{{ .prefix }}", "--timeout", "4"]
{{- end }}

{{/* Pod annotations every Flotilla pod gets: (dict "root" $ "component" "guard"). With metrics on, the
prometheus.io/* scrape annotations (for Prometheus without the operator) name the component's metrics port. */}}
{{- define "flotilla.podAnnotations" -}}
{{- $root := .root }}
{{- $ann := dict -}}
{{- if $root.Values.metrics.enabled }}
{{- $_ := set $ann "flotilla.dev/metrics-path" $root.Values.metrics.path }}
{{- $_ := set $ann "prometheus.io/scrape" "true" }}
{{- $_ := set $ann "prometheus.io/path" $root.Values.metrics.path }}
{{- $_ := set $ann "prometheus.io/port" (toString (index $root.Values.metrics.ports .component)) }}
{{- end -}}
{{- $ann = merge $ann $root.Values.podAnnotations -}}
{{- with $ann }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------------------------------------
Database
------------------------------------------------------------------------------------------- */}}

{{- define "flotilla.postgresName" -}}
{{- include "flotilla.componentName" (dict "root" . "component" "postgres") -}}
{{- end }}

{{/* Env giving DATABASE_URL (and PGPASSWORD for the in-cluster Postgres); secrets only via secretKeyRef. */}}
{{- define "flotilla.databaseEnv" -}}
{{- if .Values.postgres.enabled }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.postgres.existingSecret | default (include "flotilla.postgresName" .) }}
      key: password
- name: DATABASE_URL
  value: {{ printf "postgresql://%s@%s:5432/%s" .Values.postgres.username (include "flotilla.serviceFQDN" (dict "root" . "name" (include "flotilla.postgresName" .))) .Values.postgres.database | quote }}
{{- else if .Values.externalDatabase.existingSecret }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalDatabase.existingSecret }}
      key: {{ .Values.externalDatabase.existingSecretKey }}
{{- else if .Values.externalDatabase.url }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "flotilla.fullname" . }}-database
      key: database-url
{{- else }}
{{- fail "no database: keep postgres.enabled=true, or set externalDatabase.url or externalDatabase.existingSecret" }}
{{- end }}
{{- end }}
