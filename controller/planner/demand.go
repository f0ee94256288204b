package planner

import (
	"math"
	"sort"
	"time"
)

// CampaignDemand is the concurrent calls campaign c can use now, before any
// shared-trunk cap: its target capped by what it can dial and sustain.
func CampaignDemand(c CampaignView, now time.Time, cfg Config) int {
	dur := c.AvgAttemptSeconds
	if dur <= 0 {
		dur = cfg.DefaultAttemptSeconds
	}
	rateCap := func(cps float64) int {
		if cps <= 0 {
			return math.MaxInt
		}
		return int(math.Ceil(cps * dur))
	}
	d := min(c.Target, c.Callable+c.Active)
	// Demand that starts within the boot lead counts now, so nodes are ready
	// when it starts. Its contacts are not callable yet, so only the target
	// and the rate caps apply.
	for _, u := range c.Upcoming {
		if !u.At.After(now.Add(cfg.BootLead)) && u.Target > d {
			d = u.Target
		}
	}
	d = min(d, rateCap(c.MaxCPS), rateCap(c.TrunkCPS))
	if c.TrunkChannels > 0 {
		d = min(d, c.TrunkChannels)
	}
	return max(d, 0)
}

// TotalDemand sums the campaigns' demand, capping campaigns that share a
// trunk at what the trunk can carry (channels, and CPS × attempt duration).
func TotalDemand(cs []CampaignView, now time.Time, cfg Config) int {
	type trunk struct{ sum, limit int }
	trunks := map[string]*trunk{}
	total := 0
	for _, c := range cs {
		d := CampaignDemand(c, now, cfg)
		if c.Trunk == "" {
			total += d
			continue
		}
		t := trunks[c.Trunk]
		if t == nil {
			t = &trunk{limit: math.MaxInt}
			trunks[c.Trunk] = t
		}
		t.sum += d
		dur := c.AvgAttemptSeconds
		if dur <= 0 {
			dur = cfg.DefaultAttemptSeconds
		}
		if c.TrunkChannels > 0 {
			t.limit = min(t.limit, c.TrunkChannels)
		}
		if c.TrunkCPS > 0 {
			t.limit = min(t.limit, int(math.Ceil(c.TrunkCPS*dur)))
		}
	}
	for _, t := range trunks {
		total += min(t.sum, t.limit)
	}
	return total
}

// Shares splits slots among campaigns by priority: every campaign of the
// highest priority takes its demand (CampaignDemand) first, then the next
// priority takes what is left, and so on; campaigns of one priority split
// what their level gets in proportion to their demand. This is what
// leasing does with the fleet's slots and trunks (campaign/sqlstore).
func Shares(cs []CampaignView, slots int, now time.Time, cfg Config) map[string]int {
	out := make(map[string]int, len(cs))
	byPrio := map[int][]CampaignView{}
	var prios []int
	for _, c := range cs {
		if _, ok := byPrio[c.Priority]; !ok {
			prios = append(prios, c.Priority)
		}
		byPrio[c.Priority] = append(byPrio[c.Priority], c)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(prios)))
	left := max(slots, 0)
	for _, p := range prios {
		level := byPrio[p]
		sort.Slice(level, func(i, j int) bool { return level[i].ID < level[j].ID })
		want := make([]int, len(level))
		total := 0
		for i, c := range level {
			want[i] = CampaignDemand(c, now, cfg)
			total += want[i]
		}
		if total <= left {
			for i, c := range level {
				out[c.ID] = want[i]
			}
			left -= total
			continue
		}
		got := 0
		for i, c := range level {
			n := want[i] * left / total
			out[c.ID] = n
			got += n
		}
		for i := 0; got < left && i < len(level); i++ { // the remainder, in id order
			if out[level[i].ID] < want[i] {
				out[level[i].ID]++
				got++
			}
		}
		left = 0
	}
	return out
}

// NodeSlots is the usable slots of node n: its capacity, reduced when its
// load says it is struggling.
func NodeSlots(n NodeView, cfg Config) int {
	s := n.Capacity
	if s <= 0 {
		s = cfg.SlotsPerNode
	}
	if Struggling(n, cfg) {
		s = int(float64(s) * cfg.StruggleFactor)
	}
	return s
}

// Struggling reports whether n's last heartbeat says it is overloaded.
func Struggling(n NodeView, cfg Config) bool {
	return n.CPU >= cfg.StruggleCPU || (cfg.StruggleLoad > 0 && n.Load1 >= cfg.StruggleLoad)
}
