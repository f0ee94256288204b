package sqlstore

import "strings"

// migrations are applied in order, once each; a dialect may override a
// statement where SQLite and PostgreSQL differ. Never edit an applied
// migration: add a new one.
var migrations = []struct {
	sqlite, postgres string // postgres "" means the same as sqlite
}{
	{sqlite: `CREATE TABLE trunks (
		name TEXT PRIMARY KEY,
		max_channels INTEGER NOT NULL,
		max_cps DOUBLE PRECISION NOT NULL)`},
	{sqlite: `CREATE TABLE campaigns (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL,
		status TEXT NOT NULL,
		trunk TEXT NOT NULL REFERENCES trunks(name),
		doc TEXT NOT NULL,
		flow_version INTEGER NOT NULL DEFAULT 0,
		created_at BIGINT NOT NULL,
		updated_at BIGINT NOT NULL)`},
	{sqlite: `CREATE TABLE flows (
		campaign_id TEXT NOT NULL REFERENCES campaigns(id),
		version INTEGER NOT NULL,
		doc TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		PRIMARY KEY (campaign_id, version))`},
	{sqlite: `CREATE TABLE zone_groups (id INTEGER PRIMARY KEY, zones TEXT NOT NULL UNIQUE)`},
	{sqlite: contactsTable, postgres: strings.Replace(contactsTable, "id INTEGER PRIMARY KEY", "id BIGSERIAL PRIMARY KEY", 1)},
	// Partial indexes hold only the rows their queries look for, so a lease
	// or a result touches fewer index pages (queries name the state as a
	// literal so that both databases use them).
	{sqlite: `CREATE INDEX contacts_due ON contacts (campaign_id, next_at) WHERE state = 'pending'`},
	{sqlite: `CREATE INDEX contacts_leased ON contacts (lease_expires) WHERE state = 'leased'`},
	// attempts are finished calls. A live lease is kept on its contact row
	// (state leased, lease_*), which is all a lease writes; its attempt row
	// is written with its result or when it expires.
	{sqlite: `CREATE TABLE attempts (
		call_id TEXT PRIMARY KEY,
		contact_id BIGINT NOT NULL REFERENCES contacts(id),
		campaign_id TEXT NOT NULL,
		trunk TEXT NOT NULL,
		node_id TEXT NOT NULL,
		token TEXT NOT NULL,
		attempt INTEGER NOT NULL,
		state TEXT NOT NULL,
		started_at BIGINT NOT NULL,
		expires_at BIGINT NOT NULL,
		answered_at BIGINT NOT NULL DEFAULT 0,
		ended_at BIGINT NOT NULL DEFAULT 0,
		disposition TEXT NOT NULL DEFAULT '',
		cause INTEGER NOT NULL DEFAULT 0,
		path TEXT NOT NULL DEFAULT '[]',
		tags TEXT NOT NULL DEFAULT '{}',
		recording TEXT NOT NULL DEFAULT '')`},
	{sqlite: `CREATE INDEX attempts_ended ON attempts (ended_at)`},
	{sqlite: `CREATE TABLE dnc (phone TEXT PRIMARY KEY, source TEXT NOT NULL, added_at BIGINT NOT NULL)`},
	{sqlite: `CREATE TABLE imports (
		id TEXT PRIMARY KEY,
		campaign_id TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		report TEXT NOT NULL)`},
	{sqlite: `CREATE TABLE import_rejections (
		import_id TEXT NOT NULL,
		line INTEGER NOT NULL,
		reason TEXT NOT NULL,
		PRIMARY KEY (import_id, line))`},
	{sqlite: `CREATE TABLE api_tokens (hash TEXT PRIMARY KEY, name TEXT NOT NULL, created_at BIGINT NOT NULL)`},
	{sqlite: `CREATE TABLE pacing (key TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL, at_ms BIGINT NOT NULL)`},
	// live counts leased contacts per campaign ("c:<id>") and trunk
	// ("t:<name>"), kept in step with leases so leasing need not count
	// them; sharded below (live_shards).
	{sqlite: `CREATE TABLE live (key TEXT PRIMARY KEY, n INTEGER NOT NULL)`},
	// revision counts a campaign's updates: caches of its dialing
	// configuration key on it, so an update is seen at once.
	{sqlite: `ALTER TABLE campaigns ADD COLUMN revision BIGINT NOT NULL DEFAULT 0`},
	// A node's heartbeat renews its leases, and an ended node's leases are
	// released, by lease_node.
	{sqlite: `CREATE INDEX contacts_lease_node ON contacts (lease_node) WHERE state = 'leased'`},
	// An import's rows are staged while its upload is read, then
	// published by import id (import.go).
	{sqlite: `CREATE INDEX contacts_staged ON contacts (import_id) WHERE state = 'staged'`},
	// campaign_dnc holds each campaign's own do-not-call list, beside the
	// internal one (dnc) that every campaign honours.
	{sqlite: `CREATE TABLE campaign_dnc (
		campaign_id TEXT NOT NULL REFERENCES campaigns(id),
		phone TEXT NOT NULL,
		source TEXT NOT NULL,
		added_at BIGINT NOT NULL,
		PRIMARY KEY (campaign_id, phone))`},
	// dials logs every attempt handed out, per number across campaigns,
	// for the frequency caps; rows older than a week are pruned.
	{sqlite: `CREATE TABLE dials (phone TEXT NOT NULL, at_ms BIGINT NOT NULL)`},
	{sqlite: `CREATE INDEX dials_phone ON dials (phone, at_ms)`},
	// audit records every change made through the API: who (the token's
	// name), what, when.
	{sqlite: auditTable, postgres: strings.Replace(auditTable, "id INTEGER PRIMARY KEY", "id BIGSERIAL PRIMARY KEY", 1)},
	// compliance is each campaign's hash-chained record of every attempt:
	// what the rules engine checked, and what happened; compliance_heads
	// holds each chain's latest hash.
	{sqlite: complianceTable, postgres: strings.Replace(complianceTable, "seq INTEGER PRIMARY KEY", "seq BIGSERIAL PRIMARY KEY", 1)},
	{sqlite: `CREATE INDEX compliance_campaign ON compliance (campaign_id, seq)`},
	{sqlite: `CREATE TABLE compliance_heads (campaign_id TEXT PRIMARY KEY, hash TEXT NOT NULL)`},
	// API token roles: tokens made before roles existed keep full power.
	{sqlite: `ALTER TABLE api_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'`},
	{sqlite: `ALTER TABLE api_tokens ADD COLUMN campaigns TEXT NOT NULL DEFAULT ''`},
	{sqlite: `ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0`},
	{sqlite: `ALTER TABLE api_tokens ADD COLUMN revoked_at BIGINT NOT NULL DEFAULT 0`},
	// Trunks as a fleet resource: where nodes reach each carrier (JSON:
	// host, username, password, register), and its health: the congestion
	// causes in a row and the pause they caused; each node's last qualify
	// (SIP OPTIONS) of each trunk.
	{sqlite: `ALTER TABLE trunks ADD COLUMN config TEXT NOT NULL DEFAULT '{}'`},
	{sqlite: `ALTER TABLE trunks ADD COLUMN congestion_run INTEGER NOT NULL DEFAULT 0`},
	{sqlite: `ALTER TABLE trunks ADD COLUMN paused_until BIGINT NOT NULL DEFAULT 0`},
	{sqlite: `CREATE TABLE trunk_qualify (
		trunk TEXT NOT NULL,
		node_id TEXT NOT NULL,
		ok INTEGER NOT NULL,
		at_ms BIGINT NOT NULL,
		PRIMARY KEY (trunk, node_id))`},
	// failovers records each try of a lease that a trunk refused as
	// congested before the call went again on the next trunk of its group.
	{sqlite: `CREATE TABLE failovers (
		call_id TEXT NOT NULL,
		seq INTEGER NOT NULL,
		campaign_id TEXT NOT NULL,
		trunk TEXT NOT NULL,
		next_trunk TEXT NOT NULL,
		node_id TEXT NOT NULL,
		cause INTEGER NOT NULL,
		at_ms BIGINT NOT NULL,
		PRIMARY KEY (call_id, seq))`},
	// A contact's own caller ID (a dial list's caller_id column), '' for
	// its campaign's.
	{sqlite: `ALTER TABLE contacts ADD COLUMN caller_id TEXT NOT NULL DEFAULT ''`},
	// caller_id_uses counts the calls each pool caller ID placed per UTC
	// day (days since the epoch), across campaigns, for its daily cap.
	{sqlite: `CREATE TABLE caller_id_uses (caller_id TEXT NOT NULL, day BIGINT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (caller_id, day))`},
	// dnc_imports records every do-not-call file read into a list (''
	// for the internal one): its source, version, who and why (registry.go).
	{sqlite: dncImportsTable, postgres: strings.Replace(dncImportsTable, "seq INTEGER PRIMARY KEY", "seq BIGSERIAL PRIMARY KEY", 1)},
	// A number put on the internal do-not-call list is scrubbed from every
	// campaign: without this, each batch of a registry import scans all
	// contacts.
	{sqlite: `CREATE INDEX contacts_phone ON contacts (phone)`},
	// abandon_hours counts each campaign's live answers and abandoned calls
	// per hour (since the epoch); abandon_pace is the pacing state of a
	// campaign whose flow transfers to people (abandon.go).
	{sqlite: `CREATE TABLE abandon_hours (campaign_id TEXT NOT NULL, hour BIGINT NOT NULL, live BIGINT NOT NULL, abandoned BIGINT NOT NULL, PRIMARY KEY (campaign_id, hour))`},
	{sqlite: `CREATE TABLE abandon_pace (campaign_id TEXT PRIMARY KEY, pace DOUBLE PRECISION NOT NULL, sample_live BIGINT NOT NULL, sample_abandoned BIGINT NOT NULL)`},
	// Result webhooks (webhook.go): each campaign's signing secret, apart
	// from its document; the outbox of deliveries, written in the result's
	// transaction; and the log of every try.
	{sqlite: `CREATE TABLE webhook_secrets (campaign_id TEXT PRIMARY KEY REFERENCES campaigns(id), secret TEXT NOT NULL)`},
	{sqlite: outboxTable, postgres: strings.Replace(outboxTable, "id INTEGER PRIMARY KEY", "id BIGSERIAL PRIMARY KEY", 1)},
	{sqlite: `CREATE INDEX webhook_outbox_due ON webhook_outbox (next_at) WHERE state = 'pending'`},
	{sqlite: `CREATE INDEX webhook_outbox_campaign ON webhook_outbox (campaign_id, id)`},
	{sqlite: `CREATE TABLE webhook_tries (
		delivery_id BIGINT NOT NULL REFERENCES webhook_outbox(id),
		at BIGINT NOT NULL,
		owner TEXT NOT NULL,
		status INTEGER NOT NULL,
		error TEXT NOT NULL,
		ms BIGINT NOT NULL)`},
	{sqlite: `CREATE INDEX webhook_tries_delivery ON webhook_tries (delivery_id, at)`},
	// List recycling (recycle.go): a recycled contact's attempts before
	// its current round, and how often it was recycled. attempts keeps
	// counting across rounds: it names the calls.
	{sqlite: `ALTER TABLE contacts ADD COLUMN round_base INTEGER NOT NULL DEFAULT 0`},
	{sqlite: `ALTER TABLE contacts ADD COLUMN recycles INTEGER NOT NULL DEFAULT 0`},
	// Leasing takes due contacts ORDER BY next_at, id. SQLite's index
	// holds the rowid (id) after its columns, so contacts_due gives that
	// order; PostgreSQL's does not, and sorted every pending contact of the
	// campaign for each batch (a batch of 50 from 20,000 contacts cost
	// 9 ms). With id in the index both read the batch off its front.
	{sqlite: `CREATE INDEX contacts_due_id ON contacts (campaign_id, next_at, id) WHERE state = 'pending'`},
	{sqlite: `DROP INDEX contacts_due`},
	// live was one row per campaign and per trunk, updated by every lease
	// and every result: results queued on the campaign's row (646 ms a
	// result at 100 a second on PostgreSQL in the fleet benchmark). Now
	// each count is spread over shards (a result moves the shard of its
	// contact) and leasing sums them.
	{sqlite: `CREATE TABLE live_shards (key TEXT NOT NULL, shard INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (key, shard))`},
	{sqlite: `INSERT INTO live_shards (key, shard, n) SELECT key, 0, n FROM live`},
	{sqlite: `DROP TABLE live`},
	// Compliance records waiting to be linked into their chain (chain.go;
	// PostgreSQL only).
	{sqlite: pendingTable, postgres: strings.Replace(pendingTable, "seq INTEGER PRIMARY KEY", "seq BIGSERIAL PRIMARY KEY", 1)},
	// The dashboard's chart samples (history.go), one row per sample taken
	// by the scaler leader, so every controller serves the same past.
	{sqlite: `CREATE TABLE history (at BIGINT PRIMARY KEY, doc TEXT NOT NULL)`},
	// abandon_hours was one row per campaign and hour, updated by every
	// answered result: results queued on it (375 ms each, 63 results a
	// second, in the fleet benchmark on PostgreSQL). Now each hour's
	// counts are spread over shards as the live counts are (a result
	// moves its contact's shard), and the abandon rate sums them.
	{sqlite: `CREATE TABLE abandon_shards (campaign_id TEXT NOT NULL, hour BIGINT NOT NULL, shard INTEGER NOT NULL,
		live BIGINT NOT NULL, abandoned BIGINT NOT NULL, PRIMARY KEY (campaign_id, hour, shard))`},
	{sqlite: `INSERT INTO abandon_shards (campaign_id, hour, shard, live, abandoned) SELECT campaign_id, hour, 0, live, abandoned FROM abandon_hours`},
	{sqlite: `DROP TABLE abandon_hours`},
	// Sharding was not enough: on PostgreSQL a result waited 34 ms on
	// average for its abandon shard (7 backends waiting on one at any
	// moment, sampled at 3,500 calls), held across the result's last
	// round trips. A result now only appends to abandon_log, which no one
	// waits for; the scaler leader folds it into abandon_shards (shard 0)
	// every few seconds, and the rate sums both (abandon.go).
	{sqlite: abandonLogTable, postgres: strings.Replace(abandonLogTable, "seq INTEGER PRIMARY KEY", "seq BIGSERIAL PRIMARY KEY", 1)},
	{sqlite: `CREATE INDEX abandon_log_campaign ON abandon_log (campaign_id, hour)`},
	// PostgreSQL only (SQLite leases one writer at a time, unlocked).
	{sqlite: `SELECT 1`, postgres: leaseRoomsFunc},
}

// leaseRoomsFunc takes a lease's advisory locks (in the order given) and
// then reads the room of its first campaign and that campaign's trunks,
// in one round trip: a lease held its locks while the controller, on a
// loaded machine, took its turn to send the next statement (most of the
// hold, sampled). A volatile function's query takes a fresh snapshot, so
// it sees every lease that held the locks before (rooms, trunks.go).
const leaseRoomsFunc = `CREATE FUNCTION lease_rooms(lock_classes INTEGER[], lock_keys INTEGER[], trunk_names TEXT[], camp_key TEXT)
	RETURNS TABLE (o_name TEXT, o_max_channels INTEGER, o_max_cps DOUBLE PRECISION, o_run INTEGER, o_paused BIGINT,
		o_live BIGINT, o_tokens DOUBLE PRECISION, o_at BIGINT, o_camp_live BIGINT, o_camp_tokens DOUBLE PRECISION, o_camp_at BIGINT)
	LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	FOR i IN 1 .. COALESCE(array_length(lock_classes, 1), 0) LOOP
		PERFORM pg_advisory_xact_lock(lock_classes[i], lock_keys[i]);
	END LOOP;
	RETURN QUERY SELECT t.name, t.max_channels, t.max_cps, t.congestion_run, t.paused_until,
		COALESCE((SELECT SUM(s.n) FROM live_shards s WHERE s.key = 't:' || t.name), 0)::BIGINT, p.tokens, p.at_ms,
		COALESCE((SELECT SUM(s.n) FROM live_shards s WHERE s.key = camp_key), 0)::BIGINT,
		(SELECT q.tokens FROM pacing q WHERE q.key = camp_key), (SELECT q.at_ms FROM pacing q WHERE q.key = camp_key)
	FROM trunks t LEFT JOIN pacing p ON p.key = 't:' || t.name
	WHERE t.name = ANY(trunk_names) ORDER BY t.name;
END
$$`

const abandonLogTable = `CREATE TABLE abandon_log (
		seq INTEGER PRIMARY KEY,
		campaign_id TEXT NOT NULL,
		hour BIGINT NOT NULL,
		abandoned INTEGER NOT NULL)`

// outboxTable holds one row per webhook delivery: pending until the
// receiver answers 2xx (delivered) or the give-up age passes (dead).
// lease_owner and lease_until claim a row for one controller's try.
const outboxTable = `CREATE TABLE webhook_outbox (
		id INTEGER PRIMARY KEY,
		campaign_id TEXT NOT NULL REFERENCES campaigns(id),
		event_id TEXT NOT NULL,
		body TEXT NOT NULL,
		state TEXT NOT NULL,
		tries INTEGER NOT NULL DEFAULT 0,
		created_at BIGINT NOT NULL,
		since_at BIGINT NOT NULL,
		next_at BIGINT NOT NULL,
		lease_owner TEXT NOT NULL DEFAULT '',
		lease_until BIGINT NOT NULL DEFAULT 0,
		last_status INTEGER NOT NULL DEFAULT 0,
		last_error TEXT NOT NULL DEFAULT '',
		url TEXT NOT NULL DEFAULT '',
		done_at BIGINT NOT NULL DEFAULT 0)`

const pendingTable = `CREATE TABLE compliance_pending (
		seq INTEGER PRIMARY KEY,
		campaign_id TEXT NOT NULL,
		kind TEXT NOT NULL,
		at BIGINT NOT NULL,
		call_id TEXT NOT NULL,
		doc TEXT NOT NULL)`

const complianceTable = `CREATE TABLE compliance (
		seq INTEGER PRIMARY KEY,
		campaign_id TEXT NOT NULL,
		call_id TEXT NOT NULL,
		kind TEXT NOT NULL,
		at BIGINT NOT NULL,
		doc TEXT NOT NULL,
		prev TEXT NOT NULL,
		hash TEXT NOT NULL)`

const dncImportsTable = `CREATE TABLE dnc_imports (
		seq INTEGER PRIMARY KEY,
		id TEXT NOT NULL UNIQUE,
		list TEXT NOT NULL,
		source TEXT NOT NULL,
		version TEXT NOT NULL,
		actor TEXT NOT NULL,
		reason TEXT NOT NULL,
		started_at BIGINT NOT NULL,
		finished_at BIGINT NOT NULL DEFAULT 0,
		complete BOOLEAN NOT NULL DEFAULT FALSE,
		error TEXT NOT NULL DEFAULT '',
		rows_read BIGINT NOT NULL DEFAULT 0,
		imported BIGINT NOT NULL DEFAULT 0,
		rejected BIGINT NOT NULL DEFAULT 0)`

const auditTable = `CREATE TABLE audit (
		id INTEGER PRIMARY KEY,
		at BIGINT NOT NULL,
		actor TEXT NOT NULL,
		method TEXT NOT NULL,
		path TEXT NOT NULL,
		status INTEGER NOT NULL,
		detail TEXT NOT NULL)`

const contactsTable = `CREATE TABLE contacts (
		id INTEGER PRIMARY KEY,
		campaign_id TEXT NOT NULL REFERENCES campaigns(id),
		phone TEXT NOT NULL,
		zgroup INTEGER NOT NULL,
		fields TEXT NOT NULL,
		state TEXT NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		next_at BIGINT NOT NULL,
		lease_token TEXT,
		lease_node TEXT,
		lease_trunk TEXT,
		leased_at BIGINT NOT NULL DEFAULT 0,
		lease_expires BIGINT NOT NULL DEFAULT 0,
		import_id TEXT NOT NULL,
		line INTEGER NOT NULL,
		UNIQUE (campaign_id, phone))`
