package main

import (
	"fmt"
	"time"
)

// place is a city whose numbers the demo and the end-to-end tests call:
// calling hours are the law everywhere, so a demo started at any hour
// calls numbers where it is daytime (the simulated Asterisk dials no one).
type place struct {
	name     string
	zone     string
	callerID string
	prefix   string // the i-th number is prefix + base+i in 8 digits
	base     int
}

var places = []place{
	{"New York", "America/New_York", "+12125550100", "+121", 22000000},
	{"London", "Europe/London", "+442079460000", "+4420", 70000000},
	{"Tokyo", "Asia/Tokyo", "+81312340000", "+813", 12340000},
}

// daytime returns a place where it is between 08:00 and 19:00 at now,
// leaving at least two hours inside the legal 08:00-21:00 for a demo.
func daytime(now time.Time) place {
	for _, p := range places {
		loc, err := time.LoadLocation(p.zone)
		if err != nil {
			continue
		}
		if h := now.In(loc).Hour(); h >= 8 && h < 19 {
			return p
		}
	}
	return places[0] // unreachable: the three cover the day
}

// number is the place's i-th number, 0 ≤ i < 1,000,000.
func (p place) number(i int) string { return fmt.Sprintf("%s%08d", p.prefix, p.base+i%1000000) }
