package nodeapi

import "context"

type epochKey struct{}

// WithEpoch returns ctx carrying the registration epoch the caller's node
// token was issued for; the XML-RPC tier sets it once it has checked the
// token, and the registry refuses a token of an earlier registration.
func WithEpoch(ctx context.Context, epoch int64) context.Context {
	return context.WithValue(ctx, epochKey{}, epoch)
}

// EpochFrom returns the epoch WithEpoch put in ctx, or 0 (not checked).
func EpochFrom(ctx context.Context) int64 {
	e, _ := ctx.Value(epochKey{}).(int64)
	return e
}
