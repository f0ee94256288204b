package httpapi

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/sqlstore"
)

// BenchmarkLiveView measures the live view's two reads over a campaign of
// 5,000 finished attempts, each against its floor measured in the same
// run: streaming the same attempts from the store and doing nothing with
// them, which any answer built from them must at least do.
func BenchmarkLiveView(b *testing.B) {
	const n = 5000
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	noon := time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)
	h := (&API{Store: s, Now: func() time.Time { return noon }}).Handler()
	tok, _ := s.CreateToken(ctx, "bench", noon)
	call := func(method, path, ctype, body string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 300 {
			b.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
		}
	}
	call("PUT", "/api/v1/trunks/carrier", "application/json", `{"max_channels":100000,"max_cps":1000}`)
	camp, err := s.CreateCampaign(ctx, campaign.Campaign{Name: "Bench", Trunk: "carrier", CallerID: "+14155550100", Target: 100000, MaxCPS: 1000}, noon)
	if err != nil {
		b.Fatal(err)
	}
	var csv strings.Builder
	csv.WriteString("phone,clinic\n")
	for i := range n {
		fmt.Fprintf(&csv, "+1212555%04d,clinic %d\n", i, i%7)
	}
	call("POST", "/api/v1/campaigns/"+camp.ID+"/contacts?region=US", "text/csv", csv.String())
	call("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", "application/json", `{"start":"bye","states":{"bye":{"hangup":true}}}`)
	call("POST", "/api/v1/campaigns/"+camp.ID+"/start", "", "")
	results := []string{"confirmed", "cancelled", "opted_out", ""}
	done := 0
	for at := noon; done < n; at = at.Add(time.Minute) {
		ls, err := s.Lease(ctx, "n1", 500, at)
		if err != nil || len(ls) == 0 {
			b.Fatalf("lease after %d: %d %v", done, len(ls), err)
		}
		for _, l := range ls {
			r := campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: campaign.Answered, StartedAt: at, AnsweredAt: at.Add(time.Second), EndedAt: at.Add(20 * time.Second)}
			if tag := results[done%4]; tag != "" {
				r.Tags = map[string]string{"result": tag}
			}
			if ok, err := s.Record(ctx, "n1", r, at.Add(30*time.Second)); !ok || err != nil {
				b.Fatalf("record: %v %v", ok, err)
			}
			done++
		}
	}
	get := func(path string) { call("GET", path, "", "") }
	per := map[string]time.Duration{}
	run := func(name string, f func()) {
		b.Run(name, func(b *testing.B) {
			start := time.Now()
			for range b.N {
				f()
			}
			per[name] = time.Since(start) / time.Duration(b.N)
		})
	}
	floor := func() {
		if err := s.Results(ctx, camp.ID, func(sqlstore.ResultRow) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	// The floor runs before and after (the machine is shared; its best
	// is kept), the reads between.
	run("floor", floor)
	run("outcomes", func() { get("/api/v1/campaigns/" + camp.ID + "/outcomes") })
	run("search", func() { get("/api/v1/campaigns/" + camp.ID + "/results?q=clinic+3&limit=25") })
	run("floor-again", floor)
	per["floor"] = min(per["floor"], per["floor-again"])
	if per["floor"] > 0 {
		for _, k := range []string{"outcomes", "search"} {
			fmt.Printf("live view %s over %d attempts: %v; floor (streaming them) %v; ratio %.2f\n", k, n, per[k], per["floor"], float64(per[k])/float64(per["floor"]))
		}
	}
}
