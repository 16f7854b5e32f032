package main

import (
	"github.com/ghasi-ehealth/identity-service/core/retention"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/telemetry"
)

// openRetention builds the sweeper that deletes ended sessions, tokens,
// challenges and inbox records (core/retention, docs/OPERATIONS.md
// "Retention"). It is always built, so tests and tools can call Sweep;
// Run starts its loop, which returns at once when
// IDENTITY_RETENTION_INTERVAL is 0. Every serving instance sweeps: on
// Postgres concurrent sweeps skip each other's rows, and the jitter keeps
// them apart.
func (m *Main) openRetention(metrics *telemetry.Metrics) {
	m.retention = retention.NewService(retention.Deps{
		Store:   persistence.NewRetentionStore(m.db),
		Clock:   m.clock,
		Logger:  m.logger,
		Metrics: metrics,
	}, retention.Config{Interval: m.cfg.RetentionInterval})
}
