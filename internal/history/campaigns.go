package history

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// CampaignSeries are each campaign's series, stored as "c/ID/NAME":
// calls in progress, attempts made, calls answered, contacts waiting.
var CampaignSeries = []string{"in_progress", "attempts", "answered", "pending"}

// CampaignStore is what sampling campaigns reads.
type CampaignStore interface {
	Campaigns(ctx context.Context) ([]campaign.Campaign, error)
	Stats(ctx context.Context, id string) (campaign.Stats, error)
}

// SampleCampaigns adds to v the series of every running or paused
// campaign. It samples all it can and returns the errors of the rest.
func SampleCampaigns(ctx context.Context, s CampaignStore, v map[string]float64) error {
	cs, err := s.Campaigns(ctx)
	if err != nil {
		return fmt.Errorf("campaigns: %w", err)
	}
	var errs []error
	for _, c := range cs {
		if c.Status != campaign.StatusRunning && c.Status != campaign.StatusPaused {
			continue
		}
		st, err := s.Stats(ctx, c.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("campaign %s stats: %w", c.ID, err))
			continue
		}
		attempts := 0
		for _, n := range st.Attempts {
			attempts += n
		}
		k := "c/" + c.ID + "/"
		v[k+"in_progress"] = float64(st.InProgress)
		v[k+"attempts"] = float64(attempts)
		v[k+"answered"] = float64(st.AnsweredCalls)
		v[k+"pending"] = float64(st.Contacts[campaign.ContactPending])
	}
	return errors.Join(errs...)
}

// CampaignHandler serves the history of the campaign the route's {id}
// names (mount it behind the API's authentication, which checks that the
// token sees the campaign).
func CampaignHandler(r *Ring, now func() time.Time) http.Handler {
	return Handler(r, now, func(req *http.Request) (string, []string) {
		return "c/" + req.PathValue("id") + "/", CampaignSeries
	})
}
