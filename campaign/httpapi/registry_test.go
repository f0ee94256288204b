package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign/sqlstore"
)

// A compliance officer loads the national registries into the internal
// do-not-call list: the FTC's flat download (area code, number per line,
// or ten digits per line, one file per area code) and the UK's TPS list.
// Each import is recorded with its version, who ran it and why; the
// versions appear in every attempt's compliance record; taking a number
// off the list needs a reason, and the audit log keeps it.
func TestNationalRegistryImport(t *testing.T) {
	eachAPI(t, func(t *testing.T, c *client, s *sqlstore.Store) {
		c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 120, "max_cps": 10}, 200, nil)
		var camp struct{ ID string }
		c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Renewals", "trunk": "carrier", "caller_id": "+14155550100", "target": 50}, 201, &camp)
		if st, b := c.do("POST", "/api/v1/campaigns/"+camp.ID+"/contacts", "text/csv", strings.NewReader("phone\n2125550101\n2125550103\n3125550101\n")); st != 200 {
			t.Fatalf("import: %d %s", st, b)
		}
		type report struct {
			ID       string
			Version  string
			Source   string
			Actor    string
			Reason   string
			Complete bool
			Rows     int
			Imported int
			Rejected int
			Samples  []struct {
				Line   int
				Reason string
			}
		}
		var rep report
		ftc := "212,5550101\r\n212,5550102\r\n\r\n212,555010x\r\n"
		st, b := c.do("POST", "/api/v1/dnc?source=us-ftc&version=2026-12-01&reason="+url.QueryEscape("monthly refresh (31-day rule)"), "text/plain", strings.NewReader(ftc))
		if st != 200 || json.Unmarshal(b, &rep) != nil {
			t.Fatalf("FTC import: %d %s", st, b)
		}
		if rep.Rows != 3 || rep.Imported != 2 || rep.Rejected != 1 || !rep.Complete || rep.Version != "2026-12-01" || rep.Actor != "test" || len(rep.Samples) != 1 || rep.Samples[0].Line != 4 {
			t.Fatalf("FTC report %s", b)
		}
		// The older format: ten digits a line, one file per area code.
		if st, b := c.do("POST", "/api/v1/dnc?source=us-ftc&version=2026-12-01&reason=refresh", "text/plain", strings.NewReader("3125550101\n3125550102\n")); st != 200 {
			t.Fatalf("FTC ten-digit import: %d %s", st, b)
		}
		// TPS: national numbers, one a line.
		if st, b := c.do("POST", "/api/v1/dnc?source=uk-tps&version=2026-11-28&region=GB&reason=refresh", "text/plain", strings.NewReader("02079460001\n020 7946 0002\n")); st != 200 {
			t.Fatalf("TPS import: %d %s", st, b)
		}
		var got []struct{ Phone, Source string }
		c.json("GET", "/api/v1/dnc?prefix=%2B44", nil, 200, &got)
		if len(got) != 2 || got[0].Phone != "+442079460001" || got[0].Source != "uk-tps" {
			t.Fatalf("TPS numbers %+v", got)
		}
		var imports []report
		c.json("GET", "/api/v1/dnc/imports", nil, 200, &imports)
		if len(imports) != 3 || imports[0].Source != "uk-tps" || imports[0].Version != "2026-11-28" || imports[2].Reason != "monthly refresh (31-day rule)" {
			t.Fatalf("imports %+v", imports)
		}

		// Hostile uploads: refused whole, naming what is wrong.
		for _, tc := range []struct{ name, query, body, want string }{
			{"binary", "source=x&version=1&reason=r", "\x00\x01\x02PK\x03\x04", "binary"},
			{"no version", "source=us-ftc&reason=r", "2125550199\n", `"field": "version"`},
			{"no reason", "source=us-ftc&version=1", "2125550199\n", `"field": "reason"`},
			{"control characters in version", "source=us-ftc&version=" + url.QueryEscape("1\n2") + "&reason=r", "2125550199\n", `"field": "version"`},
			{"long source", "source=" + strings.Repeat("s", 200) + "&version=1&reason=r", "2125550199\n", `"field": "source"`},
			{"unknown list", "list=c_nope&source=x&version=1&reason=r", "2125550199\n", "not found"},
		} {
			st, b := c.do("POST", "/api/v1/dnc?"+tc.query, "text/plain", strings.NewReader(tc.body))
			if st < 400 || !strings.Contains(string(b), tc.want) {
				t.Errorf("%s: %d %s, want %q", tc.name, st, b, tc.want)
			}
		}
		c.json("GET", "/api/v1/dnc?prefix=%2B12125550199", nil, 200, &got)
		if len(got) != 0 {
			t.Errorf("a refused upload left %+v", got)
		}

		// Dialling: the listed numbers are not called, and the record
		// names the registry versions checked.
		c.json("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", map[string]any{"start": "hello"}, 200, nil)
		c.json("POST", "/api/v1/campaigns/"+camp.ID+"/start", nil, 200, nil)
		ls, err := s.Lease(context.Background(), "n1", 10, time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC))
		if err != nil || len(ls) != 1 || ls[0].Number != "+12125550103" {
			t.Fatalf("leased %+v %v", ls, err)
		}
		var out bytes.Buffer
		if err := s.ExportCompliance(context.Background(), camp.ID, &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), `"dnc_checked":["internal","internal: uk-tps version 2026-11-28","internal: us-ftc version 2026-12-01","campaign `+camp.ID+`"]`) {
			t.Errorf("compliance record: %s", out.String())
		}

		// Taking a number off needs a reason, kept in the audit log.
		st, b = c.do("DELETE", "/api/v1/dnc/+12125550102", "", nil)
		if st != 400 || !strings.Contains(string(b), `"field": "reason"`) {
			t.Fatalf("delete without a reason: %d %s", st, b)
		}
		if st, b := c.do("DELETE", "/api/v1/dnc/+12125550102?reason="+url.QueryEscape("ticket 4411: registered in error"), "", nil); st != 204 {
			t.Fatalf("delete: %d %s", st, b)
		}
		var log []struct{ Actor, Method, Path string }
		c.json("GET", "/api/v1/audit", nil, 200, &log)
		last := log[len(log)-1]
		if last.Actor != "test" || last.Method != "DELETE" || !strings.Contains(last.Path, "reason=ticket+4411") {
			t.Fatalf("audit %+v", last)
		}
	})
}
