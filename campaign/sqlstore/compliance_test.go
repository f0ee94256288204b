package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// Every attempt leaves a record of what the rules engine checked and what
// happened, chained by hash: any edit, deletion or truncation is found.
func TestComplianceRecordIsTamperEvident(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		s.Caps = campaign.Caps{} // the same two numbers are called by four campaigns
		// calls makes a campaign with two attempts: one answered, one
		// whose node died; four records.
		calls := func() campaign.Campaign {
			c := setup(t, s, 2, nil)
			ls := leaseAll(t, s, "n1", noonNY)
			if len(ls) != 2 {
				t.Fatalf("leased %d", len(ls))
			}
			if _, err := s.Record(ctx, "n1", campaign.Result{CallID: ls[0].CallID, Token: ls[0].Token, Disposition: campaign.Answered,
				Path: []string{"hello", "menu", "confirmed_msg"}, Tags: map[string]string{"result": "confirmed"}}, noonNY.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Reap(ctx, noonNY.Add(s.LeaseTTL+time.Minute)); err != nil {
				t.Fatal(err)
			}
			// On PostgreSQL the records reach the chain through the
			// linker; the tampering below needs them there.
			if err := s.LinkCompliance(ctx); err != nil {
				t.Fatal(err)
			}
			return c
		}
		c := calls()
		n, err := s.VerifyCompliance(ctx, c.ID)
		if err != nil || n != 4 {
			t.Fatalf("verify: %d records, %v; want 4 intact", n, err)
		}
		var out bytes.Buffer
		if err := s.ExportCompliance(ctx, c.ID, &out); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"zone":"America/New_York"`, `"local":"Tue 12:00"`, `"legal":"08:00-21:00"`, `47 CFR 64.1200`,
			`"dnc_checked":["internal","campaign ` + c.ID + `"]`, `"dials_24h":0`, `"path":["hello","menu","confirmed_msg"]`, `"result":"confirmed"`,
			`"contact_state":"done"`, `"disposition":"cut_off"`} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("export lacks %s:\n%s", want, out.String())
			}
		}

		for _, tc := range []struct{ name, sql, want string }{
			{"edited", `UPDATE compliance SET doc = REPLACE(doc, 'confirmed', 'cancelled') WHERE kind = 'result' AND campaign_id = ?`, "does not match its hash"},
			{"deleted", `DELETE FROM compliance WHERE seq = (SELECT MIN(seq) FROM compliance WHERE campaign_id = ?)`, "does not follow"},
			{"truncated", `DELETE FROM compliance WHERE seq = (SELECT MAX(seq) FROM compliance WHERE campaign_id = ?)`, "removed from the end"},
		} {
			c := calls()
			if _, err := s.DB().ExecContext(ctx, s.q(tc.sql), c.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.VerifyCompliance(ctx, c.ID); !errors.Is(err, ErrChainBroken) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("after the record was %s: %v, want %q", tc.name, err, tc.want)
			}
		}
	})
}
