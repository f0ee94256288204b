package sqlstore

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/importer"
)

// Each lease carries the caller ID the contact is shown: its own from the
// dial list, else a pool number of its area code under the daily cap (the
// count kept across campaigns and lease calls, reset each UTC day), else
// the campaign's. The compliance record says which and why.
func TestCallerIDPoolAndContactColumn(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		pool := func(c *campaign.Campaign) {
			c.CallerIDPool = []string{"+12125550001", "(212) 555-0002", "+13125550001"}
			c.CallerIDDailyCap = 2
			c.Target, c.MaxCPS = 100, 1000
		}
		c := setup(t, s, 0, pool)
		if c.CallerIDPool[1] != "+12125550002" {
			t.Fatalf("pool not normalised: %q", c.CallerIDPool)
		}
		var b strings.Builder
		b.WriteString("phone,caller_id\n")
		b.WriteString("2125550100,6175550000\n") // its own
		for i := 1; i <= 6; i++ {
			fmt.Fprintf(&b, "21255501%02d,\n", i)
		}
		b.WriteString("3125550100,\n6175550100,\n")
		b.WriteString("2125550199,555\n") // line 11: refused
		res, err := s.ImportContacts(ctx, c.ID, strings.NewReader(b.String()), importer.Options{}, noonNY)
		if err != nil {
			t.Fatal(err)
		}
		if res.Imported != 9 || len(res.Rejections) != 1 || res.Rejections[0].Line != 11 || !strings.Contains(res.Rejections[0].Reason, `column "caller_id"`) {
			t.Fatalf("import: %+v", res)
		}
		got := map[string]string{}
		for _, l := range leaseAll(t, s, "n1", noonNY) {
			got[l.Number] = l.CallerID
		}
		if len(got) != 9 {
			t.Fatalf("leased %d: %v", len(got), got)
		}
		if got["+12125550100"] != "+16175550000" || got["+13125550100"] != "+13125550001" || got["+16175550100"] != "+14155550100" {
			t.Errorf("caller IDs %v", got)
		}
		uses := map[string]int{}
		for i := 1; i <= 6; i++ {
			uses[got[fmt.Sprintf("+121255501%02d", i)]]++
		}
		if uses["+12125550001"] != 2 || uses["+12125550002"] != 2 || uses["+14155550100"] != 2 {
			t.Errorf("212 contacts shown %v; want each pool number twice (the cap), then the campaign's", uses)
		}

		// Another campaign sharing the pool, later the same day: the pool
		// numbers are used up.
		c2 := setup(t, s, 0, pool)
		if _, err := s.ImportContacts(ctx, c2.ID, strings.NewReader("phone\n2125550201\n"), importer.Options{}, noonNY); err != nil {
			t.Fatal(err)
		}
		if ls := leaseAll(t, s, "n1", noonNY.Add(time.Hour)); len(ls) != 1 || ls[0].CallerID != "+14155550100" {
			t.Fatalf("same day: %+v", ls)
		}
		// The next UTC day, the pool again.
		if _, err := s.ImportContacts(ctx, c2.ID, strings.NewReader("phone\n2125550202\n"), importer.Options{}, noonNY); err != nil {
			t.Fatal(err)
		}
		if ls := leaseAll(t, s, "n1", noonNY.Add(24*time.Hour)); len(ls) != 1 || ls[0].CallerID != "+12125550001" {
			t.Fatalf("next day: %+v", ls)
		}

		var out bytes.Buffer
		if err := s.ExportCompliance(ctx, c.ID, &out); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"caller_id":"+16175550000","caller_id_source":"contact"`, `"caller_id":"+13125550001","caller_id_source":"pool","caller_id_area":"+1312"`, `"caller_id":"+14155550100","caller_id_source":"campaign"`} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("compliance record lacks %s:\n%s", want, out.String())
			}
		}
	})
}
