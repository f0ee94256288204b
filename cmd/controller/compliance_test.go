package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
	"github.com/elastidial/elastidial/campaign/sqlstore"
)

// Ops verify every campaign's compliance record from the command line and
// export one; an altered record fails the check, naming it.
func TestComplianceCommand(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "c.db")
	s, err := sqlstore.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	noon := time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)
	s.PutTrunk(ctx, campaign.Trunk{Name: "carrier", MaxChannels: 10, MaxCPS: 10})
	c, err := s.CreateCampaign(ctx, campaign.Campaign{Name: "Audit me", Trunk: "carrier", CallerID: "+14155550100", Target: 5}, noon)
	if err != nil {
		t.Fatal(err)
	}
	s.ImportContacts(ctx, c.ID, strings.NewReader("phone\n+12125550100\n"), importer.Options{DefaultRegion: "US"}, noon)
	s.SaveFlow(ctx, c.ID, []byte(`{"start":"bye"}`), noon)
	s.SetStatus(ctx, c.ID, campaign.StatusRunning, noon)
	if ls, err := s.Lease(ctx, "n1", 5, noon); err != nil || len(ls) != 1 {
		t.Fatalf("lease: %v %v", ls, err)
	}
	env := func(k string) string { return map[string]string{"ELASTIDIAL_DB": db}[k] }
	var out bytes.Buffer
	if err := run(ctx, []string{"compliance", "verify"}, &out, io.Discard, env); err != nil || !strings.Contains(out.String(), c.ID+"  ok  1 records") {
		t.Fatalf("verify: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"compliance", "export", "-campaign", c.ID}, &out, io.Discard, env); err != nil || !strings.Contains(out.String(), `"phone":"+12125550100"`) {
		t.Fatalf("export: %v\n%s", err, out.String())
	}
	if _, err := s.DB().ExecContext(ctx, `UPDATE compliance SET doc = REPLACE(doc, '"dials_24h":0', '"dials_24h":9')`); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"compliance", "verify"}, &out, io.Discard, env); err == nil || !strings.Contains(out.String(), c.ID+"  BROKEN") {
		t.Fatalf("verify after tampering: %v\n%s", err, out.String())
	}
}
