{{/* The release's name for its objects: "<release>-event-manager", or the release
name alone when it holds the chart's name already; 63 characters at most. */}}
{{- define "event-manager.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "event-manager.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Pods of one component: (dict "root" $ "component" "api"). */}}
{{- define "event-manager.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "event-manager.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "event-manager.secretName" -}}
{{- .Values.secret.existingSecret | default (include "event-manager.fullname" .) -}}
{{- end -}}

{{/* The secret key: the value given, else the one an earlier install generated (read
back from the cluster), else a new one. */}}
{{- define "event-manager.secretKey" -}}
{{- if .Values.secret.secretKey -}}
{{- .Values.secret.secretKey -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "event-manager.fullname" .) -}}
{{- if and $existing (index ($existing.data | default dict) "EVENT_MANAGER_SECRET_KEY") -}}
{{- index $existing.data "EVENT_MANAGER_SECRET_KEY" | b64dec -}}
{{- else -}}
{{- randAlphaNum 48 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The delivery queues of the installation (Settings.queue_name and
later_queue_name): "<database>.deliveries" and "<database>.deliveries-later". */}}
{{- define "event-manager.queues" -}}
{{- $database := index .Values.config "EVENT_MANAGER_DATABASE" | default "event_manager" -}}
{{- printf "%s.deliveries" $database }},{{ printf "%s.deliveries-later" $database -}}
{{- end -}}

{{/* Settings common to the API and the worker: the ConfigMap, and those of the
Secret, each by its name (the proxy's optional: an existing Secret may not have it). */}}
{{- define "event-manager.environment" -}}
envFrom:
  - configMapRef:
      name: {{ include "event-manager.fullname" . }}
env:
{{- range list "EVENT_MANAGER_SECRET_KEY" "EVENT_MANAGER_MONGODB_URL" "EVENT_MANAGER_BROKER_URL" "EVENT_MANAGER_REDIS_URL" "EVENT_MANAGER_OUTBOUND_PROXY" }}
  - name: {{ . }}
    valueFrom:
      secretKeyRef:
        name: {{ include "event-manager.secretName" $ }}
        key: {{ . }}
        {{- if eq . "EVENT_MANAGER_OUTBOUND_PROXY" }}
        optional: true
        {{- end }}
{{- end }}
{{- end -}}

{{/* Restarts the pods when the settings change. */}}
{{- define "event-manager.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/outbound-ca: {{ .Values.outboundCaBundle | sha256sum }}
{{- if not .Values.secret.existingSecret }}
checksum/secret: {{ .Values.secret | toJson | sha256sum }}
{{- end }}
{{- end -}}

{{/* Writable folders on a read-only root: /tmp and the image's state folder. */}}
{{- define "event-manager.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: state
    mountPath: /var/lib/event-manager
{{- end -}}

{{- define "event-manager.volumes" -}}
volumes:
  - name: tmp
    emptyDir: {}
  - name: state
    emptyDir: {}
{{- end -}}
