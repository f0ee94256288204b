package sim

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata traces from the generators")

func TestShippedTraces(t *testing.T) {
	for name, gen := range Shipped {
		var b bytes.Buffer
		if err := gen().WriteCSV(&b); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", name+".csv")
		if *update {
			os.WriteFile(path, b.Bytes(), 0o644)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, b.Bytes()) {
			t.Fatalf("%s differs from its generator (run with -update): %v", path, err)
		}
		tr, err := ReadTrace(name, bytes.NewReader(got))
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.Changes) != len(gen().Changes) || tr.End != gen().End {
			t.Fatalf("%s: read %d changes ending %s", name, len(tr.Changes), tr.End)
		}
	}
}

func TestReadTraceErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"time,campaign,calls\n", "header must be"},
		{"seconds,campaign,calls\n", "no rows"},
		{"seconds,campaign,calls\n10,a,5\n5,a,6\n", ":3: time goes backwards"},
		{"seconds,campaign,calls\nsoon,a,5\n", "seconds \"soon\""},
		{"seconds,campaign,calls\n1,a,-5\n", "calls \"-5\""},
		{"seconds,campaign,calls,announced_seconds\n10,a,5,20\n", "announced_seconds \"20\""},
	} {
		_, err := ReadTrace("t", strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestEveryTraceKeepsTheInvariants runs the real scaler on every shipped
// trace: no call dropped by scale-in, never cheaper than the floor (the
// true lower bound), never below its own unserved floor, zones within one
// node, the same result for the same seed, and the targets beside
// the reference ops would otherwise deploy.
func TestEveryTraceKeepsTheInvariants(t *testing.T) {
	for name, gen := range Shipped {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tr := gen()
			s := Settings{Cloud: CloudModel{Seed: 1}}
			oracle, floor := Oracle(tr, s), Floor(tr, s)
			if floor.Cost > oracle.Cost {
				t.Fatalf("floor %.2f above the realistic oracle %.2f", floor.Cost, oracle.Cost)
			}
			res, err := Run(tr, s, "elastidial")
			if err != nil {
				t.Fatal(err)
			}
			again, _ := Run(tr, s, "elastidial")
			res.Series, again.Series = nil, nil
			if !reflect.DeepEqual(res, again) {
				t.Fatalf("same seed, different results:\n%+v\n%+v", res, again)
			}
			// Zones: launches go to the zone with the fewest nodes and
			// drains come from the one with the most, so after every
			// pass the zones hold within one node of each other.
			if res.ZoneSkew > 1 {
				t.Errorf("zones %d nodes apart at some tick, want at most 1", res.ZoneSkew)
			}
			if res.DroppedByScaleIn != 0 {
				t.Errorf("dropped %g calls by scale-in", res.DroppedByScaleIn)
			}
			if res.Cost < floor.Cost {
				t.Errorf("cost %.2f below the floor's %.2f: the bound is wrong", res.Cost, floor.Cost)
			}
			t.Logf("%s: cost %.2f (%.2fx oracle %.2f, %.2fx floor %.2f), unserved %.5f%% (floor %.5f%%), launches %d, short-lived %d, peak %d",
				name, res.Cost, res.Cost/oracle.Cost, oracle.Cost, res.Cost/floor.Cost, floor.Cost, 100*res.UnservedShare, 100*res.FloorUnservedShare, res.Launches, res.ShortLived, res.PeakNodes)
			// The reference ops would otherwise deploy: target tracking
			// with an EC2 warm pool of the same size.
			ref, err := Run(tr, s, "reactive-warm")
			if err != nil {
				t.Fatal(err)
			}
			// The unserved floor is a true lower bound of each run.
			for _, r := range []Result{res, ref} {
				if r.UnservedShare < r.FloorUnservedShare-1e-12 {
					t.Errorf("%s: %.5f%% unserved beats its floor %.5f%%: the floor is no bound", r.Policy, 100*r.UnservedShare, 100*r.FloorUnservedShare)
				}
			}
			if res.Cost >= ref.Cost {
				t.Errorf("$%.2f does not cost less than reactive-warm's $%.2f", res.Cost, ref.Cost)
			}
			// Less unserved, except what node failures leave: the
			// reference runs 30% above its load and absorbs a failed
			// node, elastidial replaces it. Without failures, or with
			// one spare node (Config.SpareNodes), elastidial leaves no
			// more than the reference, still at a lower cost.
			if res.UnservedShare > ref.UnservedShare {
				t.Logf("%.5f%% unserved against reactive-warm's %.5f%%: %g calls lost to node failures", 100*res.UnservedShare, 100*ref.UnservedShare, res.LostToFailures)
				noFail := s
				noFail.Cloud.FailuresPerHour = -1
				nres, _ := Run(tr, noFail, "elastidial")
				nref, _ := Run(tr, noFail, "reactive-warm")
				if nres.UnservedShare > nref.UnservedShare || nres.Cost >= nref.Cost {
					t.Errorf("without failures: %.5f%% at $%.2f does not beat reactive-warm's %.5f%% at $%.2f", 100*nres.UnservedShare, nres.Cost, 100*nref.UnservedShare, nref.Cost)
				}
				spare := s
				spare.Plan.SpareNodes = 1
				sres, _ := Run(tr, spare, "elastidial")
				if sres.UnservedShare > ref.UnservedShare || sres.Cost >= ref.Cost {
					t.Errorf("with a spare node: %.5f%% at $%.2f does not beat reactive-warm's %.5f%% at $%.2f", 100*sres.UnservedShare, sres.Cost, 100*ref.UnservedShare, ref.Cost)
				}
				t.Logf("without failures %.5f%% (reference %.5f%%); with a spare node %.5f%% at %.3fx the oracle", 100*nres.UnservedShare, 100*nref.UnservedShare, 100*sres.UnservedShare, sres.Cost/oracle.Cost)
			}
			// Scheduled traces: within 1.05× the realistic oracle.
			if scheduled(tr) && res.Cost > 1.05*oracle.Cost {
				t.Errorf("scheduled trace at %.3f× the realistic oracle, want ≤ 1.05×", res.Cost/oracle.Cost)
			}
		})
	}
}

func BenchmarkElection(b *testing.B) {
	tr := Election()
	for b.Loop() {
		if _, err := Run(tr, Settings{Cloud: CloudModel{Seed: 1}}, "elastidial"); err != nil {
			b.Fatal(err)
		}
	}
	_ = time.Second
}

// scheduled reports whether every rise of t is announced ahead.
func scheduled(t *Trace) bool {
	for _, c := range t.Changes {
		if c.Calls > 0 && c.Announced >= c.At && c.At > 0 {
			return false
		}
	}
	return true
}
