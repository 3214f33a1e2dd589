-- Runtime state: one row per record of the store interface. version is
-- the compare-and-swap token, drawn from a sequence so a record deleted
-- and made again never repeats a version an old reader holds.
CREATE SEQUENCE tenantauth_record_version;

CREATE TABLE tenantauth_records (
    kind       text        NOT NULL,
    id         text        NOT NULL,
    version    bigint      NOT NULL,
    user_id    text        NOT NULL DEFAULT '',
    revoked    boolean     NOT NULL DEFAULT false,
    expires_at timestamptz,
    data       bytea       NOT NULL,
    PRIMARY KEY (kind, id)
);

-- ListByUser.
CREATE INDEX tenantauth_records_user ON tenantauth_records (kind, user_id);
-- DeleteExpired.
CREATE INDEX tenantauth_records_expires ON tenantauth_records (expires_at) WHERE expires_at IS NOT NULL;

-- Revocations of sessions and families (revoked or deleted), read by every
-- replica's in-memory view. seq is drawn under a transaction advisory lock,
-- so rows commit in seq order and a reader that has seen seq n has seen
-- every row below it.
CREATE SEQUENCE tenantauth_revocation_seq;

CREATE TABLE tenantauth_revocations (
    seq  bigint      PRIMARY KEY,
    kind text        NOT NULL,
    id   text        NOT NULL,
    at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tenantauth_revocations_at ON tenantauth_revocations (at);

-- Rate limits shared by every replica: the times of the requests counted in
-- the last window, at most the limit of them.
CREATE TABLE tenantauth_rate_limits (
    key        bytea         PRIMARY KEY,
    hits       timestamptz[] NOT NULL,
    allowed    boolean       NOT NULL,
    expires_at timestamptz   NOT NULL
);

CREATE INDEX tenantauth_rate_limits_expires ON tenantauth_rate_limits (expires_at);
