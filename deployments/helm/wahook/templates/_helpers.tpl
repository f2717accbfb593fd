{{/* Names and labels. */}}
{{- define "wahook.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "wahook.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wahook
{{- end -}}

{{/* Selector labels of one component: include with (list . "ingress"). */}}
{{- define "wahook.selector" -}}
app.kubernetes.io/name: {{ (index . 0).Chart.Name }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "wahook.image" -}}
{{- $img := index .root.Values.image .component -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{/* The broker connection and its secrets, for both services. */}}
{{- define "wahook.brokerEnv" -}}
- name: WAHOOK_BROKER
  value: {{ .Values.broker | quote }}
{{- if eq .Values.broker "nats" }}
- name: WAHOOK_NATS_URL
  value: {{ required "nats.url is required" .Values.nats.url | quote }}
- name: WAHOOK_NATS_USER
  value: {{ .Values.nats.user | quote }}
- name: WAHOOK_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "nats.existingSecret is required" .Values.nats.existingSecret }}
      key: {{ .Values.nats.passwordKey }}
- name: WAHOOK_NATS_REPLICAS
  value: {{ .Values.nats.replicas | quote }}
- name: WAHOOK_NATS_UPDATE_STREAMS
  value: {{ .Values.nats.updateStreams | quote }}
{{- else if eq .Values.broker "kafka" }}
- name: WAHOOK_KAFKA_BROKERS
  value: {{ required "kafka.brokers is required with broker kafka" .Values.kafka.brokers | quote }}
- name: WAHOOK_KAFKA_PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: WAHOOK_KAFKA_REPLICATION
  value: {{ .Values.kafka.replication | quote }}
- name: WAHOOK_KAFKA_MIN_INSYNC_REPLICAS
  value: {{ .Values.kafka.minInSyncReplicas | quote }}
{{- $tls := include "wahook.kafkaTLS" . | fromYaml }}
{{- $ca := dig "caSecret" "name" "" $tls }}
{{- $client := dig "clientSecret" "name" "" $tls }}
- name: WAHOOK_KAFKA_TLS
  value: {{ if or (dig "enabled" false $tls) $ca $client }}"true"{{ else }}"false"{{ end }}
{{- if $ca }}
- name: WAHOOK_KAFKA_TLS_CA
  value: {{ include "wahook.kafkaTLSDir" . }}/ca/ca.crt
{{- end }}
{{- if $client }}
- name: WAHOOK_KAFKA_TLS_CERT
  value: {{ include "wahook.kafkaTLSDir" . }}/client/tls.crt
- name: WAHOOK_KAFKA_TLS_KEY
  value: {{ include "wahook.kafkaTLSDir" . }}/client/tls.key
{{- end }}
{{- if .Values.kafka.sasl.mechanism }}
- name: WAHOOK_KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: WAHOOK_KAFKA_SASL_USER
  value: {{ .Values.kafka.sasl.user | quote }}
- name: WAHOOK_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.sasl.existingSecret is required with a SASL mechanism" .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.passwordKey }}
{{- end }}
{{- else }}
{{- fail "broker must be nats or kafka" }}
{{- end }}
- name: WAHOOK_ADMIN_ADDR
  value: {{ printf "0.0.0.0:%v" .Values.adminPort | quote }}
- name: WAHOOK_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* kafka.tls as a map; a bool (the chart's earlier form, kept by
helm upgrade --reuse-values) is its enabled. */}}
{{- define "wahook.kafkaTLS" -}}
{{- if kindIs "map" .Values.kafka.tls -}}
{{- toYaml .Values.kafka.tls -}}
{{- else -}}
enabled: {{ .Values.kafka.tls | default false }}
{{- end -}}
{{- end -}}

{{- define "wahook.kafkaTLSDir" -}}
/etc/wahook/kafka-tls
{{- end -}}

{{/* A component's volumes and its container's mounts: /tmp (the root
filesystem is read-only), the Kafka TLS Secrets, extraVolumes and
extraVolumeMounts. Include with (dict "root" . "component" "ingress").
Each Secret's keys are mapped to fixed file names, so that the
WAHOOK_KAFKA_TLS_* paths do not depend on them; whole directories are
mounted (no subPath) so that a renewed Secret reaches the files, which the
services read at start. */}}
{{- define "wahook.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if eq .root.Values.broker "kafka" }}
{{- $tls := include "wahook.kafkaTLS" .root | fromYaml }}
{{- with dig "caSecret" "name" "" $tls }}
- name: kafka-tls-ca
  secret:
    secretName: {{ . }}
    items:
      - key: {{ required "kafka.tls.caSecret.key is required with caSecret.name" (dig "caSecret" "key" "" $tls) }}
        path: ca.crt
{{- end }}
{{- with dig "clientSecret" "name" "" $tls }}
- name: kafka-tls-client
  secret:
    secretName: {{ . }}
    items:
      - key: {{ required "kafka.tls.clientSecret.certKey is required with clientSecret.name" (dig "clientSecret" "certKey" "" $tls) }}
        path: tls.crt
      - key: {{ required "kafka.tls.clientSecret.keyKey is required with clientSecret.name" (dig "clientSecret" "keyKey" "" $tls) }}
        path: tls.key
{{- end }}
{{- end }}
{{- with (index .root.Values .component).extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "wahook.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if eq .root.Values.broker "kafka" }}
{{- $tls := include "wahook.kafkaTLS" .root | fromYaml }}
{{- if dig "caSecret" "name" "" $tls }}
- name: kafka-tls-ca
  mountPath: {{ include "wahook.kafkaTLSDir" .root }}/ca
  readOnly: true
{{- end }}
{{- if dig "clientSecret" "name" "" $tls }}
- name: kafka-tls-client
  mountPath: {{ include "wahook.kafkaTLSDir" .root }}/client
  readOnly: true
{{- end }}
{{- end }}
{{- with (index .root.Values .component).extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Probes on the admin listener. */}}
{{- define "wahook.probes" -}}
startupProbe:
  httpGet: { path: /readyz, port: admin }
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: { path: /healthz, port: admin }
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: { path: /readyz, port: admin }
  periodSeconds: 5
  failureThreshold: 2
{{- end -}}
