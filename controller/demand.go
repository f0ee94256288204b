package controller

import "github.com/elastidial/elastidial/controller/planner"

// viewOf is the planner's view of one campaign's demand. The planner keys
// campaigns by ID; every other field carries over unchanged, and
// TestViewOfCarriesEveryField fails when Demand grows a field this forgets.
func viewOf(d Demand) planner.CampaignView {
	return planner.CampaignView{ID: d.CampaignID, Priority: d.Priority, Target: d.Target, Callable: d.Callable, Active: d.Active,
		MaxCPS: d.MaxCPS, Trunk: d.Trunk, TrunkChannels: d.TrunkChannels, TrunkCPS: d.TrunkCPS,
		AvgAttemptSeconds: d.AvgAttemptSeconds, Upcoming: d.Upcoming, OnDemand: d.OnDemand}
}
