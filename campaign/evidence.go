package campaign

import (
	"time"
)

// Evidence is what the rules engine checked before an attempt was allowed:
// the substance of its compliance record.
type Evidence struct {
	CallID       string      `json:"call_id"`
	Campaign     string      `json:"campaign"`
	Phone        string      `json:"phone"`
	At           time.Time   `json:"at"`
	Jurisdiction string      `json:"jurisdiction"` // "" is the federal default
	LegalRule    string      `json:"legal_rule"`
	Zones        []ZoneCheck `json:"zones"`
	DNCChecked   []string    `json:"dnc_checked"` // the lists the number was not on
	Caps         Caps        `json:"caps"`
	DialsDay     int         `json:"dials_24h"` // the number's attempts before this one
	DialsWeek    int         `json:"dials_7d"`
	Attempt      int         `json:"attempt"`
	// The caller ID shown, and where it came from.
	CallerIDChoice
}

// ZoneCheck is the calling hours as they stood in one zone.
type ZoneCheck struct {
	Zone   string `json:"zone"`
	Local  string `json:"local"`  // "Tue 12:00"
	Legal  string `json:"legal"`  // "08:00-21:00"
	Window string `json:"window"` // the campaign's, that weekday
}

// Explain records why Decide allowed an attempt (call it only when it
// did): the zones and their local times, the legal and campaign hours,
// the do-not-call lists checked, and the caps with the dials counted.
func Explain(c *Campaign, k Contact, f Facts, caps Caps, lists []string, callID string, now time.Time) Evidence {
	legal := Legal(k.Jurisdiction)
	e := Evidence{CallID: callID, Campaign: c.ID, Phone: k.Phone, At: now.UTC(), Jurisdiction: k.Jurisdiction, LegalRule: legal.Rule,
		DNCChecked: lists, Caps: caps, Attempt: k.Attempts + 1}
	for _, z := range k.Zones {
		local := now.In(z)
		lw, cw := legal.Days[local.Weekday()], c.WindowOn(local.Weekday())
		e.Zones = append(e.Zones, ZoneCheck{Zone: z.String(), Local: local.Format("Mon 15:04"),
			Legal: hhmm(lw.Start) + "-" + hhmm(lw.End), Window: hhmm(cw.Start) + "-" + hhmm(cw.End)})
	}
	for _, d := range f.Dials {
		if d.After(now.Add(-24 * time.Hour)) {
			e.DialsDay++
		}
		if d.After(now.Add(-7 * 24 * time.Hour)) {
			e.DialsWeek++
		}
	}
	return e
}
