module github.com/marketplace-etl/marketplace-etl

go 1.26.0

require github.com/lib/pq v1.12.3

require (
	github.com/caarlos0/env/v10 v10.0.0 // indirect
	github.com/jmoiron/sqlx v1.4.0 // indirect
	github.com/lmittmann/tint v1.2.1 // indirect
	github.com/mfridman/interpolate v0.0.2 // indirect
	github.com/pressly/goose/v3 v3.30.0 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	github.com/sethvargo/go-retry v0.5.0 // indirect
	go.uber.org/multierr v1.11.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
)
