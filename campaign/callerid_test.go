package campaign

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// Local presence: a contact is shown a pool number of its own area code,
// the least used one under the daily cap; the contact's own caller ID
// comes first; anything else falls back to the campaign's.
func TestChooseCallerID(t *testing.T) {
	c := &Campaign{CallerID: "+14155550100", CallerIDPool: []string{"+12125550001", "+12125550002", "+13125550001", "+442079460001"}, CallerIDDailyCap: 2}
	for _, tc := range []struct {
		name, contactCID, phone string
		used                    map[string]int
		want, source            string
	}{
		{"area code", "", "+12125550199", nil, "+12125550001", CallerIDPool},
		{"least used", "", "+12125550199", map[string]int{"+12125550001": 1}, "+12125550002", CallerIDPool},
		{"one capped", "", "+12125550199", map[string]int{"+12125550001": 2, "+12125550002": 1}, "+12125550002", CallerIDPool},
		{"all capped", "", "+12125550199", map[string]int{"+12125550001": 2, "+12125550002": 2}, "+14155550100", CallerIDCampaign},
		{"other area code", "", "+13125550199", nil, "+13125550001", CallerIDPool},
		{"no local number", "", "+16175550199", nil, "+14155550100", CallerIDCampaign},
		{"London", "", "+442079460999", nil, "+442079460001", CallerIDPool},
		{"contact's own", "+16175550000", "+12125550199", nil, "+16175550000", CallerIDContact},
	} {
		used := func(n string) int { return tc.used[n] }
		got := ChooseCallerID(c, tc.contactCID, tc.phone, used)
		if got.Number != tc.want || got.Source != tc.source {
			t.Errorf("%s: got %+v, want %s from %s", tc.name, got, tc.want, tc.source)
		}
	}
	// No cap: always the least used local number.
	c.CallerIDDailyCap = 0
	if got := ChooseCallerID(c, "", "+12125550199", func(string) int { return 1e6 }); got.Number != "+12125550001" {
		t.Errorf("uncapped: %+v", got)
	}
}

func TestCallerIDPoolValidation(t *testing.T) {
	base := func() *Campaign {
		c := &Campaign{Name: "x", Trunk: "t", CallerID: "4155550100", Target: 1}
		c.Defaults()
		return c
	}
	c := base()
	c.CallerIDPool = []string{"(212) 555-0001", "+1 312 555 0001"}
	c.Defaults()
	if err := c.Validate(); err != nil || c.CallerID != "+14155550100" || c.CallerIDPool[0] != "+12125550001" || c.CallerIDPool[1] != "+13125550001" {
		t.Fatalf("normalised pool: %v %q %q", err, c.CallerID, c.CallerIDPool)
	}
	for _, tc := range []struct {
		mod   func(*Campaign)
		field string
	}{
		{func(c *Campaign) { c.CallerIDPool = []string{"+12125550001", "12345"} }, "caller_id_pool[1]"},
		{func(c *Campaign) { c.CallerIDPool = []string{"+12125550001", "+1 212 555 0001"} }, "caller_id_pool[1]"},
		{func(c *Campaign) { c.CallerIDPool = []string{"911"} }, "caller_id_pool[0]"},
		{func(c *Campaign) { c.CallerIDDailyCap = -1 }, "caller_id_daily_cap"},
		{func(c *Campaign) { c.CallerIDPool = make([]string, MaxCallerIDPool+1) }, "caller_id_pool"},
	} {
		c := base()
		tc.mod(c)
		c.Defaults()
		err := c.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%q / cap %d: %v, want an error on %s", c.CallerIDPool, c.CallerIDDailyCap, err, tc.field)
		}
	}
}

// BenchmarkChooseCallerID picks for a London contact from a pool of 1,000
// numbers of 100 London area codes, indexed once (as each lease does);
// its floor, measured in the same run, is asking how often each number
// of the contact's area code was used.
func BenchmarkChooseCallerID(b *testing.B) {
	c := &Campaign{CallerID: "+14155550100"}
	areas := []string{"20", "121", "161", "113", "131", "141", "151", "117", "114", "115"}
	for i := range 1000 {
		n := fmt.Sprintf("+44%s%07d", areas[i%len(areas)], 4960000+i)
		if areas[i%len(areas)] == "20" {
			n = fmt.Sprintf("+4420%08d", 79460000+i)
		}
		c.CallerIDPool = append(c.CallerIDPool, n)
	}
	p := NewCallerIDPicker(c)
	local := p.byArea["+4420"]
	uses := map[string]int{}
	used := func(n string) int { return uses[n] }
	start := time.Now()
	const floorN = 2000
	sink := 0
	for range floorN {
		for _, n := range local {
			sink += used(n)
		}
	}
	floor := time.Since(start) / floorN
	var got CallerIDChoice
	for b.Loop() {
		got = p.Choose("", "+442079460999", used)
	}
	if got.Source != CallerIDPool || sink != 0 || len(local) != 100 {
		b.Fatalf("%+v", got)
	}
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(per)/float64(floor), "x-floor")
	b.Logf("%s a choice from 1,000 pool numbers (100 local); floor %s; ratio %.1f", per, floor, float64(per)/float64(floor))
}
