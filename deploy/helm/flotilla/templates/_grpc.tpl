{{/*
Deployment + Service of a CPU gRPC service (guard, rag):
(dict "root" $ "component" "guard" "values" .Values.guard "prefix" "FLOTILLA_GUARD_" "env" "<yaml list>")
*/}}
{{- define "flotilla.grpcWorkload" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $c := dict "root" $root "component" .component }}
{{- $name := include "flotilla.componentName" $c }}
{{- $metricsPort := index $root.Values.metrics.ports .component }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "flotilla.componentLabels" $c | nindent 4 }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: {{ $v.strategy.maxSurge }}
      maxUnavailable: {{ $v.strategy.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "flotilla.selectorLabels" $c | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "flotilla.componentLabels" $c | nindent 8 }}
      {{- include "flotilla.podAnnotations" (dict "root" $root "component" .component) | nindent 6 }}
    spec:
      {{- include "flotilla.podSpecCommon" $root | nindent 6 }}
      terminationGracePeriodSeconds: {{ include "flotilla.terminationGrace" (dict "root" $root "drain" $v.drainGraceSeconds) }}
      {{- include "flotilla.scheduling" (dict "values" $v) | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "flotilla.image" (dict "root" $root "image" $v.image) }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: ["python", "-m", "services.{{ .component }}"]
          ports:
            - name: grpc
              containerPort: {{ $v.port }}
              protocol: TCP
            {{- if $root.Values.metrics.enabled }}
            - name: metrics
              containerPort: {{ $metricsPort }}
              protocol: TCP
            {{- end }}
          env:
            {{- include "flotilla.commonEnv" (dict "root" $root "prefix" .prefix "port" $v.port) | nindent 12 }}
            - name: {{ .prefix }}DRAIN_GRACE_S
              value: {{ $v.drainGraceSeconds | quote }}
            # Prometheus /metrics over HTTP; 0 keeps the port closed while metrics are off.
            - name: {{ .prefix }}METRICS_PORT
              value: {{ ternary $metricsPort 0 $root.Values.metrics.enabled | quote }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- include "flotilla.preStop" $root | nindent 10 }}
          # Liveness: the port accepts connections. Readiness: grpc.health.v1 answers SERVING over mTLS
          # (NOT_SERVING from SIGTERM on, so the pod leaves the endpoints while it drains).
          livenessProbe:
            tcpSocket:
              port: grpc
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            {{- include "flotilla.grpcHealthExec" (dict "prefix" .prefix) | nindent 12 }}
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 2
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            {{- include "flotilla.commonVolumeMounts" $root | nindent 12 }}
      volumes:
        {{- include "flotilla.commonVolumes" $c | nindent 8 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "flotilla.componentLabels" $c | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "flotilla.selectorLabels" $c | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $v.port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    {{- if $root.Values.metrics.enabled }}
    - name: metrics
      port: {{ $metricsPort }}
      targetPort: metrics
      protocol: TCP
    {{- end }}
{{- end }}
