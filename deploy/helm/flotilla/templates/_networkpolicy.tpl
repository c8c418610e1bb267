{{/* Egress rules shared by the NetworkPolicies (root context). */}}
{{- define "flotilla.np.dns" -}}
- to:
    {{- toYaml .Values.networkPolicy.dnsTo | nindent 4 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}
{{- define "flotilla.np.database" -}}
{{- if .Values.postgres.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "flotilla.selectorLabels" (dict "root" . "component" "postgres") | nindent 10 }}
  ports:
    - port: 5432
      protocol: TCP
{{- else }}
- to:
    {{- toYaml .Values.networkPolicy.externalDatabaseTo | nindent 4 }}
  ports:
    - port: {{ .Values.externalDatabase.port }}
      protocol: TCP
{{- end }}
{{- end }}
