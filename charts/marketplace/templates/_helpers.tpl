{{/*
Chart name, truncated to 63 characters (DNS-1123 label limit).
*/}}
{{- define "marketplace.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: <release>-<chart>, or the release name when it contains the chart name.
Truncated to 40 characters so that every "<fullname>-<suffix>" stays a valid name.
*/}}
{{- define "marketplace.fullname" -}}
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

{{/*
Chart name and version for the helm.sh/chart label.
*/}}
{{- define "marketplace.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels. Call with the root context.
*/}}
{{- define "marketplace.labels" -}}
helm.sh/chart: {{ include "marketplace.chart" . }}
{{ include "marketplace.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "marketplace.name" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels. Call with the root context; add app.kubernetes.io/component yourself.
*/}}
{{- define "marketplace.selectorLabels" -}}
app.kubernetes.io/name: {{ include "marketplace.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of a component: dict "root" $ "component" "daily".
*/}}
{{- define "marketplace.componentLabels" -}}
{{ include "marketplace.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Selector labels of a component: dict "root" $ "component" "metabase".
*/}}
{{- define "marketplace.componentSelectorLabels" -}}
{{ include "marketplace.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "marketplace.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "marketplace.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The marketplace-etl image reference.
*/}}
{{- define "marketplace.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- database */}}

{{- define "marketplace.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "marketplace.fullname" .) }}
{{- end }}

{{/*
Secret holding the database passwords (keys: password, readonly-password, metabase-password).
*/}}
{{- define "marketplace.database.secretName" -}}
{{- if .Values.postgresql.enabled }}
{{- default (include "marketplace.postgresql.fullname" .) .Values.postgresql.auth.existingSecret }}
{{- else }}
{{- default (printf "%s-external-db" (include "marketplace.fullname" .)) .Values.externalDatabase.existingSecret }}
{{- end }}
{{- end }}

{{- define "marketplace.database.host" -}}
{{- if .Values.postgresql.enabled }}
{{- include "marketplace.postgresql.fullname" . }}
{{- else }}
{{- required "externalDatabase.host is required when postgresql.enabled is false" .Values.externalDatabase.host }}
{{- end }}
{{- end }}

{{- define "marketplace.database.port" -}}
{{- if .Values.postgresql.enabled }}
{{- .Values.postgresql.service.port }}
{{- else }}
{{- .Values.externalDatabase.port }}
{{- end }}
{{- end }}

{{/*
Database settings by key: dict "root" $ "key" "database" -> postgresql.auth.<key> or externalDatabase.<key>.
*/}}
{{- define "marketplace.database.get" -}}
{{- if .root.Values.postgresql.enabled }}
{{- index .root.Values.postgresql.auth .key }}
{{- else }}
{{- index .root.Values.externalDatabase .key }}
{{- end }}
{{- end }}

{{/*
libpq sslmode of the warehouse connections (ETL and Metabase's warehouse connection).
*/}}
{{- define "marketplace.database.sslmode" -}}
{{- if .Values.postgresql.enabled }}
{{- if .Values.postgresql.tls.enabled }}{{ .Values.postgresql.tls.sslmode }}{{ else }}disable{{ end }}
{{- else }}
{{- .Values.externalDatabase.sslmode }}
{{- end }}
{{- end }}

{{/*
Path of the CA bundle that verifies the database's certificate, or nothing: the bundled
PostgreSQL's ca.crt (mounted by the chart), else externalDatabase.sslRootCert (a file you mount
with extraVolumes/extraVolumeMounts).
*/}}
{{- define "marketplace.database.sslRootCert" -}}
{{- if .Values.postgresql.enabled }}
{{- if .Values.postgresql.tls.enabled }}/etc/marketplace-etl/postgresql-ca/ca.crt{{ end }}
{{- else }}
{{- .Values.externalDatabase.sslRootCert }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- services */}}

{{- define "marketplace.metabase.fullname" -}}
{{- printf "%s-metabase" (include "marketplace.fullname" .) }}
{{- end }}

{{- define "marketplace.metabase.secretName" -}}
{{- default (include "marketplace.metabase.fullname" .) .Values.metabase.existingSecret }}
{{- end }}

{{- define "marketplace.metabase.url" -}}
{{- printf "http://%s:%v" (include "marketplace.metabase.fullname" .) .Values.metabase.service.port }}
{{- end }}

{{- define "marketplace.pushgateway.fullname" -}}
{{- printf "%s-pushgateway" (include "marketplace.fullname" .) }}
{{- end }}

{{- define "marketplace.pushgateway.url" -}}
{{- if .Values.pushgateway.enabled }}
{{- printf "http://%s:%v" (include "marketplace.pushgateway.fullname" .) .Values.pushgateway.service.port }}
{{- else }}
{{- .Values.metrics.pushgatewayUrl }}
{{- end }}
{{- end }}

{{/*
Start of every backfill Job's name (the range and a hash follow); the alert rules match it.
*/}}
{{- define "marketplace.backfill.namePrefix" -}}
{{- printf "%s-backfill-" (include "marketplace.fullname" . | trunc 24 | trimSuffix "-") }}
{{- end }}

{{- define "marketplace.mockApi.fullname" -}}
{{- printf "%s-mockapi" (include "marketplace.fullname" .) }}
{{- end }}

{{- define "marketplace.apiUrl" -}}
{{- if .Values.mockApi.enabled }}
{{- printf "http://%s:%v/data" (include "marketplace.mockApi.fullname" .) .Values.mockApi.service.port }}
{{- else }}
{{- .Values.etl.apiUrl }}
{{- end }}
{{- end }}

{{/*
A password kept across upgrades: the value already stored in the live Secret when there is one
(`lookup`; empty under `helm template` and --dry-run), a new random one otherwise.
dict "root" $ "name" <secret name> "key" <data key>. Output is base64-encoded.
Under gitOps (rendered with `helm template`) `lookup` finds nothing and every render would make
new passwords: marketplace.validate refuses generated Secrets there.
*/}}
{{- define "marketplace.keptSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name }}
{{- if and $existing $existing.data (hasKey $existing.data .key) }}
{{- index $existing.data .key }}
{{- else }}
{{- randAlphaNum (default 32 .length) | b64enc }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- ETL pods */}}

{{/*
Environment of every marketplace-etl container: the ConfigMap plus the secrets.
*/}}
{{- define "marketplace.etl.envFrom" -}}
- configMapRef:
    name: {{ include "marketplace.fullname" . }}-etl
{{- end }}

{{/*
Environment of the ETL containers that load data (daily, backfill, migrate, test): the ETL role's
password only (never the superuser's, the read-only role's or Metabase's).
*/}}
{{- define "marketplace.etl.env" -}}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "marketplace.database.secretName" . }}
      key: password
{{- if .Values.metrics.passwordSecret.name }}
- name: PUSHGATEWAY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.metrics.passwordSecret.name }}
      key: {{ .Values.metrics.passwordSecret.key }}
{{- end }}
{{- with .Values.etl.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod-level fields shared by the marketplace-etl pods (everything but containers).
*/}}
{{- define "marketplace.etl.podCommon" -}}
serviceAccountName: {{ include "marketplace.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.etl.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.etl.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.etl.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 256Mi
  {{- if and .Values.postgresql.enabled .Values.postgresql.tls.enabled }}
  - name: postgresql-ca
    secret:
      secretName: {{ .Values.postgresql.tls.existingSecret }}
      items:
        - key: ca.crt
          path: ca.crt
  {{- end }}
  {{- with .Values.etl.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
Container-level fields shared by the marketplace-etl containers (after name/args).
*/}}
{{- define "marketplace.etl.containerCommon" -}}
image: {{ include "marketplace.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
resources:
  {{- toYaml .Values.etl.resources | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  {{- if and .Values.postgresql.enabled .Values.postgresql.tls.enabled }}
  - name: postgresql-ca
    mountPath: /etc/marketplace-etl/postgresql-ca
    readOnly: true
  {{- end }}
  {{- with .Values.etl.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
podFailurePolicy of the ETL Jobs: exit code 2 (usage/config) and 3 (data contract) fail the Job at
once, a pod disruption (eviction, preemption, node drain) does not count against backoffLimit.
*/}}
{{- define "marketplace.etl.podFailurePolicy" -}}
rules:
  - action: FailJob
    onExitCodes:
      containerName: etl
      operator: In
      values: [2, 3]
  - action: Ignore
    onPodConditions:
      - type: DisruptionTarget
{{- end }}

{{/*
Wait for the bundled PostgreSQL before the first migration (an init container on the postgres
image, which has pg_isready): Jobs created by `helm install` start while the database is still
running initdb, and a failed pod would cost the Job's exponential back-off. An external database
is expected to be up.
*/}}
{{- define "marketplace.etl.waitForDatabase" -}}
{{- if .Values.postgresql.enabled }}
initContainers:
  - name: wait-for-postgresql
    image: "{{ .Values.postgresql.image.repository }}:{{ .Values.postgresql.image.tag }}"
    imagePullPolicy: {{ .Values.postgresql.image.pullPolicy }}
    command: ["sh", "-c", "until pg_isready -q -h \"$PGHOST\" -p \"$PGPORT\"; do sleep 2; done"]
    env:
      - name: PGHOST
        value: {{ include "marketplace.database.host" . | quote }}
      - name: PGPORT
        value: {{ include "marketplace.database.port" . | quote }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    resources:
      requests:
        cpu: 10m
        memory: 16Mi
      limits:
        memory: 64Mi
{{- end }}
{{- end }}

{{/*
Whether a Job runs as a Helm hook: dict "root" $ "useHelmHooks" <bool>. Never under gitOps.
Outputs "true" or nothing.
*/}}
{{- define "marketplace.useHelmHooks" -}}
{{- if and .useHelmHooks (not .root.Values.gitOps) }}true{{ end }}
{{- end }}

{{/*
Refuses value combinations that break an installed release. Included once, by the ETL ConfigMap.
*/}}
{{- define "marketplace.validate" -}}
{{- if .Values.gitOps }}
{{- $missing := list }}
{{- if and .Values.postgresql.enabled (not .Values.postgresql.auth.existingSecret) }}
{{- $missing = append $missing "postgresql.auth.existingSecret" }}
{{- end }}
{{- if and .Values.metabase.enabled (not .Values.metabase.existingSecret) }}
{{- $missing = append $missing "metabase.existingSecret" }}
{{- end }}
{{- with $missing }}
{{- fail (printf "gitOps=true: set %s. A chart rendered with `helm template` (Argo CD, Flux post-renderers) cannot read back generated passwords, so every sync would rotate them and lock the ETL and Metabase out; create the Secrets first (docs/deployment.md, GitOps)" (join ", " .)) }}
{{- end }}
{{- end }}
{{- if and .Values.postgresql.enabled .Values.postgresql.tls.enabled (not .Values.postgresql.tls.existingSecret) }}
{{- fail "postgresql.tls.enabled=true: set postgresql.tls.existingSecret to a Secret with tls.crt, tls.key and ca.crt (e.g. one cert-manager writes)" }}
{{- end }}
{{- if eq .Values.postgresql.auth.username "postgres" }}
{{- fail "postgresql.auth.username=postgres: that is the bundled database's superuser; the ETL connects as its own non-superuser role (default marketplace)" }}
{{- end }}
{{- end }}

{{/*
Fails on clusters older than Kubernetes 1.29. Uses the major/minor numbers (gitVersion is
v0.0.0-master on clusters built from source). Included once, by the ETL ConfigMap.
*/}}
{{- define "marketplace.validateKubeVersion" -}}
{{- $major := .Capabilities.KubeVersion.Major | trimSuffix "+" | atoi }}
{{- $minor := .Capabilities.KubeVersion.Minor | trimSuffix "+" | atoi }}
{{- if or (lt $major 1) (and (eq $major 1) (lt $minor 29)) }}
{{- fail (printf "marketplace needs Kubernetes >= 1.29 (CronJob timeZone, Job podFailurePolicy and backoffLimitPerIndex); this cluster is %s.%s" .Capabilities.KubeVersion.Major .Capabilities.KubeVersion.Minor) }}
{{- end }}
{{- end }}
