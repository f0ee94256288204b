package sqlstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/elastidial/elastidial/campaign"
)

// TestSQLiteFilesPrivate: the database and its WAL hold contacts' numbers
// and token hashes, so only the controller's user may read them, whatever
// the umask, and an existing world-readable file is tightened.
func TestSQLiteFilesPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "e.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	setup(t, s, 3, nil) // writes go through the WAL
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v, want -rw-------", filepath.Base(p), fi.Mode().Perm())
		}
	}
	s.Close()
	os.Chmod(path, 0o644)
	s, err = Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("reopened: %v, want -rw-------", fi.Mode().Perm())
	}
}

// TestTokensRolesExpiryRevocation: a token carries its role, scope and
// expiry; an expired or revoked token is refused; revoking is by the
// public id a listing shows.
func TestTokensRolesExpiryRevocation(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := noonNY
		if _, _, err := s.CreateAPIToken(ctx, campaign.Token{Name: "x", Role: "root"}, now); err == nil {
			t.Fatal("a token with an unknown role was made")
		}
		if _, _, err := s.CreateAPIToken(ctx, campaign.Token{Name: "x", Role: campaign.RoleOps, Campaigns: []string{"c_1"}}, now); err == nil {
			t.Fatal("an ops token scoped to campaigns was made")
		}
		mgr, info, err := s.CreateAPIToken(ctx, campaign.Token{Name: "flu team", Role: campaign.RoleManager, Campaigns: []string{"c_1", "c_2"}, ExpiresAt: now.Add(time.Hour)}, now)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Authenticate(ctx, mgr, now)
		if err != nil || got.Role != campaign.RoleManager || !got.Sees("c_2") || got.Sees("c_3") || got.ID != info.ID || got.Name != "flu team" {
			t.Fatalf("authenticate: %+v %v", got, err)
		}
		if _, err := s.Authenticate(ctx, mgr, now.Add(time.Hour)); !errors.Is(err, campaign.ErrUnauthorized) {
			t.Fatalf("expired token: %v", err)
		}
		admin, err := s.CreateToken(ctx, "first", now)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.Authenticate(ctx, admin, now); err != nil || got.Role != campaign.RoleAdmin || !got.Allows(campaign.PermTokens) {
			t.Fatalf("admin: %+v %v", got, err)
		}
		list, err := s.Tokens(ctx)
		if err != nil || len(list) != 2 {
			t.Fatalf("list: %+v %v", list, err)
		}
		if _, err := s.RevokeToken(ctx, info.ID, now); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, mgr, now); !errors.Is(err, campaign.ErrUnauthorized) {
			t.Fatalf("revoked token: %v", err)
		}
		if _, err := s.RevokeToken(ctx, "0123456789ab", now); !errors.Is(err, campaign.ErrNotFound) {
			t.Fatalf("unknown id: %v", err)
		}
		if _, err := s.RevokeToken(ctx, "%", now); err == nil {
			t.Fatal("a wildcard id was accepted")
		}
		if _, err := s.Authenticate(ctx, admin, now); err != nil {
			t.Fatalf("revoking one token touched another: %v", err)
		}
	})
}
