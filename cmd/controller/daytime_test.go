package main

import (
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/elastidial/elastidial/campaign"
)

// Every hour of the day has a place with hours left to call, and its
// numbers are valid, in its zone, and callable by a campaign with its
// caller ID.
func TestDaytimeCoversTheDay(t *testing.T) {
	day := time.Date(2026, 1, 14, 0, 0, 0, 0, time.UTC)
	for _, d := range []time.Time{day, day.AddDate(0, 6, 0)} { // winter and summer time
		for m := 0; m < 24*60; m += 15 {
			now := d.Add(time.Duration(m) * time.Minute)
			p := daytime(now)
			loc, _ := time.LoadLocation(p.zone)
			c := &campaign.Campaign{Status: campaign.StatusRunning, CallerID: p.callerID, Window: campaign.DefaultWindow, MaxAttempts: 1}
			for _, i := range []int{0, 1234, 999999} {
				n := p.number(i)
				zs, _ := phonenumbers.GetTimezonesForPrefix(n)
				if len(zs) != 1 || zs[0] != p.zone {
					t.Fatalf("%s: zones %v, want %s", n, zs, p.zone)
				}
				k := campaign.Contact{Phone: n, Jurisdiction: campaign.Jurisdiction(n), Zones: []*time.Location{loc}, State: campaign.ContactPending}
				for _, at := range []time.Time{now, now.Add(2 * time.Hour)} {
					if v := campaign.Decide(c, k, campaign.Facts{}, campaign.DefaultCaps, at); !v.OK() {
						t.Fatalf("%s at %s: %s %s", n, at, v.Reason, v.Detail)
					}
				}
			}
		}
	}
}
