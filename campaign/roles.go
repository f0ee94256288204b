package campaign

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Perm is one thing an API token may do.
type Perm string

// Permissions, checked on every REST route.
const (
	PermRead     Perm = "read"     // campaigns, their flows and stats, trunks, the audio library
	PermWrite    Perm = "write"    // create and change campaigns, flows, dial lists, audio, do-not-call
	PermControl  Perm = "control"  // start, pause, resume, stop campaigns
	PermResults  Perm = "results"  // results and rejections exports: contacts' numbers (PII)
	PermTrunks   Perm = "trunks"   // change carrier trunks
	PermFleet    Perm = "fleet"    // nodes, capacity and cost
	PermTokens   Perm = "tokens"   // create, list and revoke API tokens
	PermAllCamps Perm = "all-camp" // create campaigns (a token scoped to campaigns cannot)
)

// Role is what a token is for.
type Role string

// Roles, from most to least power.
const (
	RoleAdmin   Role = "admin"   // everything
	RoleOps     Role = "ops"     // fleet, cost, trunks, campaign status; no contact data
	RoleManager Role = "manager" // campaigns end to end, results included; optionally scoped
	RoleViewer  Role = "viewer"  // reads campaigns and stats; no contact data; optionally scoped
)

var rolePerms = map[Role][]Perm{
	RoleAdmin:   {PermRead, PermWrite, PermControl, PermResults, PermTrunks, PermFleet, PermTokens, PermAllCamps},
	RoleOps:     {PermRead, PermControl, PermTrunks, PermFleet, PermAllCamps},
	RoleManager: {PermRead, PermWrite, PermControl, PermResults, PermAllCamps},
	RoleViewer:  {PermRead},
}

// Roles lists every role, most powerful first.
var Roles = []Role{RoleAdmin, RoleOps, RoleManager, RoleViewer}

// Token describes an API token (never the token itself: only its hash is
// kept).
type Token struct {
	ID        string    `json:"id"` // short, public: names the token to revoke it
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Campaigns []string  `json:"campaigns,omitempty"` // the campaigns it may see; none: all
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"` // zero: never
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Validate checks a token about to be created.
func (t *Token) Validate() error {
	switch {
	case strings.TrimSpace(t.Name) == "" || len(t.Name) > 100:
		return &FieldError{"name", "must be 1 to 100 characters"}
	case rolePerms[t.Role] == nil:
		return &FieldError{"role", fmt.Sprintf("%q: want admin, ops, manager or viewer", t.Role)}
	case len(t.Campaigns) > 0 && t.Role != RoleManager && t.Role != RoleViewer:
		return &FieldError{"campaigns", "only manager and viewer tokens are scoped to campaigns"}
	}
	for _, id := range t.Campaigns {
		if id == "" || strings.ContainsAny(id, ", ") {
			return &FieldError{"campaigns", fmt.Sprintf("%q is not a campaign id", id)}
		}
	}
	return nil
}

// Allows reports whether the token may do p. A token scoped to campaigns
// may not create one.
func (t *Token) Allows(p Perm) bool {
	if p == PermAllCamps && len(t.Campaigns) > 0 {
		return false
	}
	return slices.Contains(rolePerms[t.Role], p)
}

// Sees reports whether the token may see campaign id at all.
func (t *Token) Sees(id string) bool {
	return len(t.Campaigns) == 0 || slices.Contains(t.Campaigns, id)
}

// Live reports whether the token may be used at now.
func (t *Token) Live(now time.Time) bool {
	return t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}
