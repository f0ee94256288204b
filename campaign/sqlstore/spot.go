package sqlstore

import "github.com/elastidial/elastidial/campaign"

// forNode keeps the campaigns node may lease for: a spot node, which EC2
// reclaims two minutes after its notice, gets no campaign whose calls may
// outlast SpotCallLimit (campaign.Campaign.OffSpot). The scaler keeps
// on-demand nodes for those (campaign.Demand.OnDemand).
func (s *Store) forNode(spot bool, cs []campaign.Campaign) []campaign.Campaign {
	if s.SpotCallLimit <= 0 || !spot {
		return cs
	}
	out := make([]campaign.Campaign, 0, len(cs))
	for _, c := range cs {
		if !c.OffSpot(s.SpotCallLimit) {
			out = append(out, c)
		}
	}
	return out
}
