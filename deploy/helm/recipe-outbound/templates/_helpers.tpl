{{- define "outbound.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "outbound.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The headless Service: each worker's stable DNS name, the canonical URL the others route table requests to. */}}
{{- define "outbound.peers" -}}
{{- printf "%s-peers" (include "outbound.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "outbound.selectorLabels" -}}
app.kubernetes.io/name: {{ include "outbound.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "outbound.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "outbound.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: recipe-outbound
{{- end }}

{{- define "outbound.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "outbound.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "outbound.secretName" -}}
{{- default (include "outbound.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* host:port,host:port as the service's broker URL list: kafka://host:port;kafka://host:port */}}
{{- define "outbound.broker" -}}
{{- $servers := list }}
{{- range splitList "," .Values.kafka.bootstrapServers }}
{{- if trim . }}{{ $servers = append $servers (printf "kafka://%s" (trim .)) }}{{ end }}
{{- end }}
{{- join ";" $servers }}
{{- end }}

{{- define "outbound.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The topic catalog shipped with the chart (a link to topics/catalog.json in the source tree). */}}
{{- define "outbound.catalog" -}}
{{- .Files.Get "files/catalog.json" }}
{{- end }}

{{/* The catalog's count of the co-partitioned family: the one count every `copartitioned` group has
(0: the catalog names no group). The service's rule, service/catalog.py family_partitions. */}}
{{- define "outbound.familyPartitions" -}}
{{- $catalog := include "outbound.catalog" . | fromJson }}
{{- $family := 0 }}
{{- range $group := (default list $catalog.copartitioned) }}
{{- range $key := $group }}
{{- $count := int (index $catalog.topics $key).partitions }}
{{- if and $family (ne $count $family) }}
{{- fail (printf "files/catalog.json: the co-partitioned groups must share one partition count (%s has %d, others %d)" $key $count $family) }}
{{- end }}
{{- $family = $count }}
{{- end }}
{{- end }}
{{- $family }}
{{- end }}

{{/* A topic's partition count in this deployment, from its catalog count (dict "root" $ "count" N):
kafka.partitions for every topic the catalog gives the family's count, the catalog's count for the
others. The service's rule, service/catalog.py partitions_for (the tests compare them). */}}
{{- define "outbound.partitionsFor" -}}
{{- $count := int .count }}
{{- $family := include "outbound.familyPartitions" .root | int }}
{{- if and $family (eq $count $family) }}
{{- int .root.Values.kafka.partitions }}
{{- else }}
{{- $count }}
{{- end }}
{{- end }}

{{/* The largest partition count of the deployment's topics: workers beyond it would own no partition. */}}
{{- define "outbound.maxPartitions" -}}
{{- $catalog := include "outbound.catalog" . | fromJson }}
{{- $max := 1 }}
{{- range $key, $topic := $catalog.topics }}
{{- $count := include "outbound.partitionsFor" (dict "root" $ "count" $topic.partitions) | int }}
{{- if gt $count $max }}{{ $max = $count }}{{ end }}
{{- end }}
{{- $max }}
{{- end }}

{{/* A value as the service's settings parse it: YAML numbers arrive as floats, and 2147483648 must not become 2.147483648e+09. */}}
{{- define "outbound.settingValue" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}
{{- int64 . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/* Every OUTBOUND_* setting the chart sets (the tests compare this list with the service's settings). */}}
{{- define "outbound.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: HOME
  value: /tmp
{{- if .Values.staticMembership }}
# The pod's name survives its restarts (StatefulSet): the group hands a restarted worker its
# partitions straight back, without waiting out its session or rebalancing the others.
- name: OUTBOUND_INSTANCE_ID
  value: "$(POD_NAME)"
{{- end }}
- name: OUTBOUND_BROKER
  value: {{ include "outbound.broker" . | quote }}
- name: OUTBOUND_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
- name: OUTBOUND_SASL_MECHANISM
  value: {{ .Values.kafka.saslMechanism | quote }}
{{- if .Values.kafka.tls.caSecret }}
- name: OUTBOUND_SSL_CAFILE
  value: /etc/outbound/kafka-ca/{{ .Values.kafka.tls.caKey }}
{{- end }}
- name: OUTBOUND_TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
- name: OUTBOUND_REPLICATION_FACTOR
  value: {{ .Values.kafka.replicationFactor | int | quote }}
- name: OUTBOUND_PARTITIONS
  value: {{ .Values.kafka.partitions | int | quote }}
- name: OUTBOUND_APP_ID
  value: {{ .Values.kafka.appId | quote }}
- name: OUTBOUND_DATA_DIR
  value: /var/lib/outbound/data
- name: OUTBOUND_LOCAL_DELIVERY_ROOT
  value: /var/lib/outbound/data/local-deliveries
- name: OUTBOUND_SPOOL_DIR
  value: /var/lib/outbound/spool
- name: OUTBOUND_WEB_HOST
  value: "0.0.0.0"
- name: OUTBOUND_WEB_PORT
  value: {{ .Values.service.port | int | quote }}
- name: OUTBOUND_CANONICAL_URL
  value: {{ printf "http://$(POD_NAME).%s.%s.svc.%s:%d" (include "outbound.peers" .) .Release.Namespace .Values.clusterDomain (int .Values.service.port) | quote }}
{{- if .Values.smtp.tls.caSecret }}
- name: OUTBOUND_SMTP_CAFILE
  value: /etc/outbound/smtp-ca/{{ .Values.smtp.tls.caKey }}
{{- end }}
{{- range $name, $value := .Values.config }}
- name: OUTBOUND_{{ upper $name }}
  value: {{ include "outbound.settingValue" $value | quote }}
{{- end }}
{{- $secret := include "outbound.secretName" . }}
{{- range $env, $key := .Values.secrets.keys }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- end }}

{{- define "outbound.caVolumeMounts" -}}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/outbound/kafka-ca
  readOnly: true
{{- end }}
{{- if .Values.smtp.tls.caSecret }}
- name: smtp-ca
  mountPath: /etc/outbound/smtp-ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "outbound.caVolumes" -}}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
    items:
      - key: {{ .Values.kafka.tls.caKey }}
        path: {{ .Values.kafka.tls.caKey }}
{{- end }}
{{- if .Values.smtp.tls.caSecret }}
- name: smtp-ca
  secret:
    secretName: {{ .Values.smtp.tls.caSecret }}
    items:
      - key: {{ .Values.smtp.tls.caKey }}
        path: {{ .Values.smtp.tls.caKey }}
{{- end }}
{{- end }}

{{/* Checks no schema can express: they need the catalog or two values at once. */}}
{{- define "outbound.checks" -}}
{{- $max := include "outbound.maxPartitions" . | int }}
{{- if gt (int .Values.replicaCount) $max }}
{{- fail (printf "replicaCount (%d) is more than the largest topic's partition count (%d, kafka.partitions for the co-partitioned topics): the extra workers would own no partition" (int .Values.replicaCount) $max) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.maxReplicas) $max) }}
{{- fail (printf "autoscaling.maxReplicas (%d) is more than the largest topic's partition count (%d, kafka.partitions for the co-partitioned topics): the extra workers would own no partition" (int .Values.autoscaling.maxReplicas) $max) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- $grace := float64 .Values.config.shutdown_grace_seconds }}
{{- if lt (float64 .Values.terminationGracePeriodSeconds) (addf $grace 15) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed the time a worker takes to finish its deliveries in flight (%v s) by at least 15 s, or Kubernetes kills deliveries the worker is still finishing" .Values.terminationGracePeriodSeconds $grace) }}
{{- end }}
{{- if and (eq .Values.topics.mode "strimzi") (not .Values.topics.strimzi.cluster) }}
{{- fail "topics.strimzi.cluster is required with topics.mode=strimzi: the name of the Strimzi Kafka resource" }}
{{- end }}
{{- end }}
