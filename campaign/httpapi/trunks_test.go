package httpapi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
	"github.com/elastidial/elastidial/campaign/sqlstore"
)

var noon = time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)

// runningCampaign creates a campaign through the API with n New York
// contacts, a flow, and starts it.
func runningCampaign(t *testing.T, c *client, doc map[string]any, n int) string {
	t.Helper()
	var camp struct{ ID string }
	c.json("POST", "/api/v1/campaigns", doc, 201, &camp)
	var csv strings.Builder
	csv.WriteString("phone\n")
	for i := range n {
		fmt.Fprintf(&csv, "212-555-%04d\n", 1000+i)
	}
	if status, body := c.do("POST", "/api/v1/campaigns/"+camp.ID+"/contacts?region=US", "text/csv", strings.NewReader(csv.String())); status != 200 {
		t.Fatalf("import: %d %s", status, body)
	}
	c.json("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", map[string]any{"start": "hello"}, 200, nil)
	c.json("POST", "/api/v1/campaigns/"+camp.ID+"/start", nil, 200, nil)
	return camp.ID
}

func byTrunk(ls []campaign.Lease) map[string]int {
	out := map[string]int{}
	for _, l := range ls {
		out[l.Trunk]++
	}
	return out
}

func TestTrunkRegistryHostileInput(t *testing.T) {
	c, _ := newAPI(t)
	c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 10, "max_cps": 10}, 200, nil)
	for _, tc := range []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"host with a newline", "/api/v1/trunks/t", `{"max_channels":1,"max_cps":1,"host":"a.example\n[evil]"}`, 400, `"field": "host"`},
		{"host with a space", "/api/v1/trunks/t", `{"max_channels":1,"max_cps":1,"host":"a b"}`, 400, `"field": "host"`},
		{"port out of range", "/api/v1/trunks/t", `{"max_channels":1,"max_cps":1,"host":"sip.example:70000"}`, 400, `port \"70000\"`},
		{"password with ;", "/api/v1/trunks/t", `{"max_channels":1,"max_cps":1,"host":"sip.example","username":"u","password":"a;b"}`, 400, `"field": "password"`},
		{"password with newline", "/api/v1/trunks/t", `{"max_channels":1,"max_cps":1,"host":"sip.example","username":"u","password":"a\nb"}`, 400, `"field": "password"`},
		{"username with [", "/api/v1/trunks/t", `{"max_channels":1,"max_cps":1,"host":"sip.example","username":"[u]"}`, 400, `"field": "username"`},
		{"register without password", "/api/v1/trunks/t", `{"max_channels":1,"max_cps":1,"host":"sip.example","username":"u","register":true}`, 400, `"field": "register"`},
		{"credentials without host", "/api/v1/trunks/t", `{"max_channels":1,"max_cps":1,"username":"u"}`, 400, `"field": "host"`},
		{"bad name", "/api/v1/trunks/-x", `{"max_channels":1,"max_cps":1}`, 400, `"field": "name"`},
		{"zero channels", "/api/v1/trunks/t", `{"max_channels":0,"max_cps":1}`, 400, `"field": "max_channels"`},
		{"health is not writable", "/api/v1/trunks/t", `{"max_channels":1,"max_cps":1,"health":{"up":false}}`, 200, `"up": true`},
		{"group naming a missing trunk", "/api/v1/campaigns", `{"name":"x","trunk":"carrier","trunks":["carrier","nope"],"caller_id":"+14155550100","target":5}`, 400, `"field": "trunks[1]"`},
		{"group twice the same", "/api/v1/campaigns", `{"name":"x","trunk":"carrier","trunks":["carrier","carrier"],"caller_id":"+14155550100","target":5}`, 400, `is in the group twice`},
		{"group not starting with trunk", "/api/v1/campaigns", `{"name":"x","trunk":"carrier","trunks":["t","carrier"],"caller_id":"+14155550100","target":5}`, 400, `"field": "trunks"`},
		{"group too long", "/api/v1/campaigns", `{"name":"x","trunks":["carrier","a","b","c","d","e","f","g","h"],"caller_id":"+14155550100","target":5}`, 400, `at most 8`},
		{"priority negative", "/api/v1/campaigns", `{"name":"x","trunk":"carrier","priority":-1,"caller_id":"+14155550100","target":5}`, 400, `"field": "priority"`},
		{"priority not a number", "/api/v1/campaigns", `{"name":"x","trunk":"carrier","priority":"urgent","caller_id":"+14155550100","target":5}`, 400, `"field": "priority"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "PUT"
			if strings.HasSuffix(tc.path, "/campaigns") {
				method = "POST"
			}
			status, body := c.do(method, tc.path, "application/json", strings.NewReader(tc.body))
			if status != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("status %d, body %s; want %d containing %q", status, body, tc.status, tc.want)
			}
		})
	}
	// Nothing refused was stored, and the carrier trunk is intact.
	var ts []campaign.Trunk
	c.json("GET", "/api/v1/trunks", nil, 200, &ts)
	if len(ts) != 2 || ts[0].Name != "carrier" || ts[0].MaxChannels != 10 || ts[1].Name != "t" || ts[1].Host != "" {
		t.Fatalf("trunks after hostile input: %+v", ts)
	}
}

func TestTrunkPasswordIsWriteOnly(t *testing.T) {
	c, s := newAPI(t)
	var got map[string]any
	c.json("PUT", "/api/v1/trunks/b", map[string]any{"max_channels": 5, "max_cps": 2, "host": "sip.example.net:5080", "username": "acct", "password": "s3cret!"}, 200, &got)
	if _, ok := got["password"]; ok || got["has_password"] != true || got["host"] != "sip.example.net:5080" {
		t.Fatalf("put answer: %v", got)
	}
	status, body := c.do("GET", "/api/v1/trunks", "", nil)
	if status != 200 || strings.Contains(string(body), "s3cret") {
		t.Fatalf("list shows the password: %s", body)
	}
	// An update that leaves the password out keeps it.
	c.json("PUT", "/api/v1/trunks/b", map[string]any{"max_channels": 6, "max_cps": 2, "host": "sip.example.net:5080", "username": "acct"}, 200, nil)
	v1, ts, err := s.TrunkConfig(context.Background())
	if err != nil || len(ts) != 1 || ts[0].Password != "s3cret!" || ts[0].Username != "acct" {
		t.Fatalf("node config: %+v %v", ts, err)
	}
	c.json("PUT", "/api/v1/trunks/b", map[string]any{"max_channels": 6, "max_cps": 2, "host": "sip2.example.net", "username": "acct"}, 200, nil)
	if v2, _, _ := s.TrunkConfig(context.Background()); v2 == v1 {
		t.Fatalf("node config version did not change with the host")
	}
	// Limits alone do not change what nodes write.
	v3, _, _ := s.TrunkConfig(context.Background())
	c.json("PUT", "/api/v1/trunks/b", map[string]any{"max_channels": 60, "max_cps": 20, "host": "sip2.example.net", "username": "acct"}, 200, nil)
	if v4, _, _ := s.TrunkConfig(context.Background()); v4 != v3 {
		t.Fatalf("node config version changed with the limits")
	}
}

// TestTrunkGroupLeasing: a campaign's calls go out on the first trunk of
// its group with room, the rest on the next; each trunk's channels hold
// across every node and campaign; the lease names the trunk.
func TestTrunkGroupLeasing(t *testing.T) {
	c, s := newAPI(t)
	ctx := context.Background()
	c.json("PUT", "/api/v1/trunks/a", map[string]any{"max_channels": 3, "max_cps": 100}, 200, nil)
	c.json("PUT", "/api/v1/trunks/b", map[string]any{"max_channels": 4, "max_cps": 100}, 200, nil)
	id := runningCampaign(t, c, map[string]any{"name": "Group", "trunks": []string{"a", "b"}, "caller_id": "+14155550100", "target": 50, "max_cps": 100}, 20)
	var camp campaign.Campaign
	c.json("GET", "/api/v1/campaigns/"+id, nil, 200, &camp)
	if camp.Trunk != "a" || strings.Join(camp.Trunks, ",") != "a,b" {
		t.Fatalf("campaign group: %q %v", camp.Trunk, camp.Trunks)
	}
	l1, err := s.Lease(ctx, "n1", 2, noon)
	if err != nil || fmt.Sprint(byTrunk(l1)) != "map[a:2]" {
		t.Fatalf("first lease: %v %v", byTrunk(l1), err)
	}
	l2, err := s.Lease(ctx, "n2", 10, noon)
	if err != nil || fmt.Sprint(byTrunk(l2)) != "map[a:1 b:4]" {
		t.Fatalf("second node's lease: %v %v", byTrunk(l2), err)
	}
	if l3, err := s.Lease(ctx, "n3", 10, noon); err != nil || len(l3) != 0 {
		t.Fatalf("lease past every trunk's channels: %v %v", byTrunk(l3), err)
	}
	// A result frees a channel on its trunk.
	if _, err := s.Record(ctx, "n2", campaign.Result{CallID: l2[4].CallID, Token: l2[4].Token, Disposition: campaign.Busy, Cause: 17}, noon.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if l4, err := s.Lease(ctx, "n3", 10, noon.Add(time.Second)); err != nil || fmt.Sprint(byTrunk(l4)) != "map[b:1]" {
		t.Fatalf("lease after a result on b: %v %v", byTrunk(l4), err)
	}
}

// TestTrunkCPSAcrossFleet: a trunk's calls per second hold over every
// node asking, whatever the campaigns allow.
func TestTrunkCPSAcrossFleet(t *testing.T) {
	c, s := newAPI(t)
	ctx := context.Background()
	c.json("PUT", "/api/v1/trunks/slow", map[string]any{"max_channels": 100, "max_cps": 2}, 200, nil)
	runningCampaign(t, c, map[string]any{"name": "One", "trunk": "slow", "caller_id": "+14155550100", "target": 50, "max_cps": 100}, 20)
	runningCampaign(t, c, map[string]any{"name": "Two", "trunk": "slow", "caller_id": "+14155550100", "target": 50, "max_cps": 100}, 20)
	total := 0
	for i := range 5 {
		ls, err := s.Lease(ctx, fmt.Sprintf("n%d", i), 10, noon)
		if err != nil {
			t.Fatal(err)
		}
		total += len(ls)
	}
	if total != 2 {
		t.Fatalf("five nodes at one instant got %d calls on a 2 cps trunk", total)
	}
	ls, _ := s.Lease(ctx, "n9", 10, noon.Add(1500*time.Millisecond))
	if len(ls) != 2 {
		t.Fatalf("1.5 s later: %d calls, want 2 (the bucket holds one second's worth)", len(ls))
	}
}

// TestFailoverToNextTrunk: a call refused as congested moves, as the same
// lease and attempt, to the next trunk of the group with room; busy is
// not failed over; the last trunk has no next; a run of congestion causes
// takes a trunk out of rotation, visible in the API, until its pause ends.
func TestFailoverToNextTrunk(t *testing.T) {
	c, s := newAPI(t)
	ctx := context.Background()
	c.json("PUT", "/api/v1/trunks/a", map[string]any{"max_channels": 10, "max_cps": 100}, 200, nil)
	c.json("PUT", "/api/v1/trunks/b", map[string]any{"max_channels": 1, "max_cps": 100}, 200, nil)
	id := runningCampaign(t, c, map[string]any{"name": "Failover", "trunks": []string{"a", "b"}, "caller_id": "+14155550100", "target": 50, "max_cps": 100, "max_attempts": 1}, 10)
	ls, err := s.Lease(ctx, "n1", 3, noon)
	if err != nil || fmt.Sprint(byTrunk(ls)) != "map[a:3]" {
		t.Fatalf("lease: %v %v", byTrunk(ls), err)
	}
	if _, err := s.Failover(ctx, "n1", ls[0].CallID, ls[0].Token, 17, noon); err == nil || !strings.Contains(err.Error(), "not a congestion cause") {
		t.Fatalf("busy failed over: %v", err)
	}
	if _, err := s.Failover(ctx, "n2", ls[0].CallID, ls[0].Token, 34, noon); err == nil {
		t.Fatalf("another node moved the call")
	}
	next, err := s.Failover(ctx, "n1", ls[0].CallID, ls[0].Token, 34, noon)
	if err != nil || next != "b" {
		t.Fatalf("failover: %q %v", next, err)
	}
	// b's one channel is taken: the next congested call has nowhere to go.
	if next, err := s.Failover(ctx, "n1", ls[1].CallID, ls[1].Token, 42, noon); err != nil || next != "" {
		t.Fatalf("failover with b full: %q %v", next, err)
	}
	// On the last trunk there is no next.
	if next, err := s.Failover(ctx, "n1", ls[0].CallID, ls[0].Token, 34, noon); err != nil || next != "" {
		t.Fatalf("failover from the last trunk: %q %v", next, err)
	}
	// The moved call answers on b: one attempt (max_attempts 1 holds it
	// done), recorded on b, and both trunks' channels come back.
	if _, err := s.Record(ctx, "n1", campaign.Result{CallID: ls[0].CallID, Token: ls[0].Token, Disposition: campaign.Answered, AnsweredAt: noon.Add(time.Second)}, noon.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var rows []string
	if err := s.Results(ctx, id, func(r sqlstore.ResultRow) error {
		rows = append(rows, fmt.Sprintf("%s %s %d", r.CallID, r.Disposition, r.Attempt))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0] != ls[0].CallID+" answered 1" {
		t.Fatalf("results: %v", rows)
	}
	if fo, err := s.Failovers(ctx, id); err != nil || fo["a"] != 1 {
		t.Fatalf("failovers: %v %v", fo, err)
	}
	// b's channel is free again: the other congested call can move.
	if next, err := s.Failover(ctx, "n1", ls[1].CallID, ls[1].Token, 42, noon.Add(time.Minute)); err != nil || next != "b" {
		t.Fatalf("b's channel not freed: %q %v", next, err)
	}
	for _, l := range ls[1:] {
		if _, err := s.Record(ctx, "n1", campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: campaign.NoAnswer, Cause: 19}, noon.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}

	// Health: CongestionRunLimit congestion causes in a row on a take it
	// out of rotation for a minute.
	ls, _ = s.Lease(ctx, "n3", 10, noon.Add(2*time.Minute))
	at := noon.Add(2 * time.Minute)
	for i, l := range ls[:campaign.CongestionRunLimit] {
		if _, err := s.Record(ctx, "n3", campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: campaign.Congestion, Cause: 34}, at); err != nil {
			t.Fatal(i, err)
		}
	}
	tsAt, _ := s.TrunksAt(ctx, at)
	if h := tsAt[0].Health; tsAt[0].Name != "a" || h.Up || h.CongestionRun != campaign.CongestionRunLimit || !strings.Contains(h.Reason, "congestion") {
		t.Fatalf("a after a congestion run: %+v", h)
	}
	if _, err := s.Failover(ctx, "n9", "k99999-1", "x", 34, at); err == nil {
		t.Fatalf("unknown call failed over")
	}
	tsAt, _ = s.TrunksAt(ctx, at.Add(campaign.CongestionPause+time.Second))
	if !tsAt[0].Health.Up {
		t.Fatalf("a still out after its pause: %+v", tsAt[0].Health)
	}
}

// TestTrunkOutOfRotationWhenUnreachable: a trunk every node finds
// unreachable (no answer to OPTIONS) gets no calls, its group's next
// trunk takes them, the API says why; it returns once a node reaches it.
func TestTrunkOutOfRotationWhenUnreachable(t *testing.T) {
	c, s := newAPI(t)
	ctx := context.Background()
	c.json("PUT", "/api/v1/trunks/a", map[string]any{"max_channels": 10, "max_cps": 100, "host": "a.example"}, 200, nil)
	c.json("PUT", "/api/v1/trunks/b", map[string]any{"max_channels": 10, "max_cps": 100, "host": "b.example"}, 200, nil)
	runningCampaign(t, c, map[string]any{"name": "Health", "trunks": []string{"a", "b"}, "caller_id": "+14155550100", "target": 50, "max_cps": 100}, 20)
	// The API's clock is noon; nodes report just before.
	if err := s.ReportQualify(ctx, "n1", map[string]bool{"a": false, "b": true}, noon.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.ReportQualify(ctx, "n2", map[string]bool{"a": false}, noon.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	var ts []campaign.Trunk
	c.json("GET", "/api/v1/trunks", nil, 200, &ts)
	if h := ts[0].Health; ts[0].Name != "a" || h.Up || h.Unreachable != 2 || !strings.Contains(h.Reason, "unreachable") {
		t.Fatalf("a reported unreachable by both nodes: %+v", h)
	}
	if ls, err := s.Lease(ctx, "n1", 3, noon); err != nil || fmt.Sprint(byTrunk(ls)) != "map[b:3]" {
		t.Fatalf("lease with a out: %v %v", byTrunk(ls), err)
	}
	// One node reaches it again: back in rotation.
	if err := s.ReportQualify(ctx, "n2", map[string]bool{"a": true}, noon); err != nil {
		t.Fatal(err)
	}
	c.json("GET", "/api/v1/trunks", nil, 200, &ts)
	if h := ts[0].Health; !h.Up || h.Reachable != 1 || h.Unreachable != 1 {
		t.Fatalf("a reached by one node: %+v", h)
	}
	if ls, err := s.Lease(ctx, "n1", 3, noon.Add(time.Second)); err != nil || fmt.Sprint(byTrunk(ls)) != "map[a:3]" {
		t.Fatalf("lease with a back: %v %v", byTrunk(ls), err)
	}
	// Reports go stale: old evidence takes nothing out of rotation.
	if err := s.ReportQualify(ctx, "n2", map[string]bool{"a": false}, noon.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.ReportQualify(ctx, "n1", map[string]bool{"a": false}, noon.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	c.json("GET", "/api/v1/trunks", nil, 200, &ts)
	if h := ts[0].Health; !h.Up || h.Unreachable != 0 {
		t.Fatalf("stale reports count: %+v", h)
	}
}

// TestPriorityPreemption: an emergency campaign is served before routine
// ones, on the node's slots and on its trunks; while it has contacts to
// call and its trunk is full, a routine campaign on that trunk gets
// nothing, and one on another trunk still dials; once its demand is
// met, routine campaigns take what is left.
func TestPriorityPreemption(t *testing.T) {
	c, s := newAPI(t)
	ctx := context.Background()
	c.json("PUT", "/api/v1/trunks/t", map[string]any{"max_channels": 5, "max_cps": 100}, 200, nil)
	c.json("PUT", "/api/v1/trunks/other", map[string]any{"max_channels": 8, "max_cps": 100}, 200, nil)
	routine := runningCampaign(t, c, map[string]any{"name": "Routine", "trunk": "t", "caller_id": "+14155550100", "target": 50, "max_cps": 100}, 10)
	other := runningCampaign(t, c, map[string]any{"name": "Routine elsewhere", "trunk": "other", "caller_id": "+14155550100", "target": 50, "max_cps": 100}, 10)
	emergency := runningCampaign(t, c, map[string]any{"name": "Flood warning", "trunk": "t", "priority": 100, "caller_id": "+14155550100", "target": 50, "max_cps": 100}, 8)
	var got campaign.Campaign
	c.json("GET", "/api/v1/campaigns/"+emergency, nil, 200, &got)
	if got.Priority != 100 {
		t.Fatalf("priority not kept: %d", got.Priority)
	}
	byCampaign := func(ls []campaign.Lease) string {
		m := map[string]int{}
		for _, l := range ls {
			switch l.CampaignID {
			case routine:
				m["routine"]++
			case other:
				m["other"]++
			case emergency:
				m["emergency"]++
			}
		}
		return fmt.Sprint(m)
	}
	// Node slots: the emergency campaign first.
	l1, err := s.Lease(ctx, "n1", 3, noon)
	if err != nil || byCampaign(l1) != "map[emergency:3]" {
		t.Fatalf("three slots: %s %v", byCampaign(l1), err)
	}
	// Its trunk fills with contacts of its own still due: the routine
	// campaign on that trunk waits; the one on another trunk dials.
	l2, err := s.Lease(ctx, "n2", 20, noon)
	if err != nil || byCampaign(l2) != "map[emergency:2 other:8]" {
		t.Fatalf("trunk short: %s %v", byCampaign(l2), err)
	}
	if l, _ := s.Lease(ctx, "n3", 20, noon); len(l) != 0 {
		t.Fatalf("full trunks leased %s", byCampaign(l))
	}
	for node, ls := range map[string][]campaign.Lease{"n1": l1, "n2": l2} {
		for _, l := range ls {
			if l.CampaignID != emergency {
				continue
			}
			if _, err := s.Record(ctx, node, campaign.Result{CallID: l.CallID, Token: l.Token, Disposition: campaign.Answered}, noon.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Five channels free, three emergency contacts left: the routine
	// campaign gets the other two.
	l3, err := s.Lease(ctx, "n3", 20, noon.Add(time.Second))
	if err != nil || byCampaign(l3) != "map[emergency:3 routine:2]" {
		t.Fatalf("emergency demand met: %s %v", byCampaign(l3), err)
	}
}

func TestDeleteTrunk(t *testing.T) {
	c, s := newAPI(t)
	c.json("PUT", "/api/v1/trunks/a", map[string]any{"max_channels": 10, "max_cps": 10}, 200, nil)
	c.json("PUT", "/api/v1/trunks/b", map[string]any{"max_channels": 10, "max_cps": 10, "host": "b.example"}, 200, nil)
	id := runningCampaign(t, c, map[string]any{"name": "Uses b", "trunks": []string{"a", "b"}, "caller_id": "+14155550100", "target": 5}, 1)
	if status, body := c.do("DELETE", "/api/v1/trunks/b", "", nil); status != 409 || !strings.Contains(string(body), id) {
		t.Fatalf("delete a trunk in use: %d %s", status, body)
	}
	if status, _ := c.do("DELETE", "/api/v1/trunks/nope", "", nil); status != 404 {
		t.Fatalf("delete an unknown trunk: %d", status)
	}
	v1, _, _ := s.TrunkConfig(context.Background())
	c.json("POST", "/api/v1/campaigns/"+id+"/stop", nil, 200, nil)
	if status, body := c.do("DELETE", "/api/v1/trunks/b", "", nil); status != 204 {
		t.Fatalf("delete: %d %s", status, body)
	}
	if v2, ts, _ := s.TrunkConfig(context.Background()); v2 == v1 || len(ts) != 0 {
		t.Fatalf("node configuration after the delete: %q %v", v2, ts)
	}
	var ts []campaign.Trunk
	c.json("GET", "/api/v1/trunks", nil, 200, &ts)
	if len(ts) != 1 || ts[0].Name != "a" {
		t.Fatalf("trunks: %+v", ts)
	}
}
