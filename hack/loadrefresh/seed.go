package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantauth/tenantauth/authserver/postgres"
)

// seedData is a session record's JSON of the size real ones have (about
// 450 bytes: user, org, family, times and a refresh-token hash).
func seedData(tag string) string {
	return `{"user_id":"usr_seedseedseedseedseedseedse","email":"seed-` + tag + `@example.com","org_ref":"demo/acme","org_id":"org_acme",` +
		`"amr":["pwd"],"family_id":"fam_01hseedseedseedseedseedse","created_at":"2026-01-01T00:00:00Z","auth_time":"2026-01-01T00:00:00Z",` +
		`"idle_expires_at":"2026-02-01T00:00:00Z","absolute_expires_at":"2026-04-01T00:00:00Z",` +
		`"refresh_hash":"5f4dcc3b5aa765d61d8327deb882cf995f4dcc3b5aa765d61d8327deb882cf99"}`
}

// seed writes n session rows of distinct users with COPY.
func seed(ctx context.Context, st *postgres.Store, n int, expires time.Time, tag string) error {
	prefix := make([]byte, 4)
	_, _ = rand.Read(prefix)
	p := hex.EncodeToString(prefix)
	data := []byte(seedData(tag))
	var v int64
	if err := st.Pool().QueryRow(ctx, "SELECT nextval('tenantauth_record_version')").Scan(&v); err != nil {
		return err
	}
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		i++
		id := fmt.Sprintf("ses_%s%020d", p, i)
		return []any{"session", id, v, fmt.Sprintf("usr_%s%020d", p, i), false, expires, data}, nil
	})
	_, err := st.Pool().CopyFrom(ctx, pgx.Identifier{"tenantauth_records"},
		[]string{"kind", "id", "version", "user_id", "revoked", "expires_at", "data"}, src)
	return err
}
