package importer

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestNANPAnalysis(t *testing.T) {
	info := nanp()
	if !info.on {
		t.Fatal("fast path is off: the +1 metadata has a shape the analysis does not model")
	}
	if !info.regions["US"] || !info.regions["CA"] {
		t.Errorf("fast regions %v", info.regions)
	}
	hist := map[uint8]int{}
	for a := 200; a < 1000; a++ {
		hist[info.depth[a]]++
	}
	t.Logf("digits deciding validity, by how many area codes: %v", hist)
	// Area codes whose patterns are known to look far: Jamaica 876 (7
	// digits: 876-606-0xxx), Barbados 246.
	if info.depth[876] < 7 || info.depth[246] < 7 {
		t.Errorf("depth 876 = %d, 246 = %d; want ≥ 7", info.depth[876], info.depth[246])
	}
}

func TestPatternDepth(t *testing.T) {
	tests := []struct {
		pat    string
		prefix bool
		area   string
		want   int
	}{
		{`\d{10}`, false, "212", 0},
		{`[2-9]\d{9}`, false, "212", 0},
		{`(?:212|310)[2-9]\d{6}`, false, "212", 4},
		{`(?:212|310)[2-9]\d{6}`, false, "415", 0}, // dead after the area
		{`5056(?:[0-35-9]\d|4[468])\d{4}|7302[0-4]\d{5}`, false, "505", 6},
		{`5056(?:[0-35-9]\d|4[468])\d{4}|7302[0-4]\d{5}`, false, "730", 5},
		{`(?:1|23)4\d{5,8}`, false, "234", 0}, // variable width: the length decides
		{`(?:1|23)4[2-9]\d{4,7}`, false, "234", 4},
		{`876|658`, true, "876", 0},
		{`8766`, true, "876", 4},
	}
	for _, tt := range tests {
		p, ok := compileDigitPattern(tt.pat, tt.prefix)
		if !ok {
			t.Fatalf("compile %q", tt.pat)
		}
		got, ok := p.depthAfter(tt.area)
		if !ok || got != tt.want {
			t.Errorf("depthAfter(%q, %s) = %d, %v; want %d", tt.pat, tt.area, got, ok, tt.want)
		}
	}
}

// TestFastPathMatchesSlowPath: for random plainly written +1 numbers, in
// every fast form, the fast path answers exactly what phonenumbers does.
func TestFastPathMatchesSlowPath(t *testing.T) {
	fast := newNormaliser("US")
	slow := newNormaliser("US")
	slow.nanp = &nanpInfo{} // fast path off
	rng := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() {
		n = 500
	}
	forms := []string{"%s%s%s", "(%s) %s-%s", "+1 %s %s %s", "1-%s-%s-%s", "+1.%s.%s.%s", "1 (%s) %s %s"}
	fastHits := 0
	for range n {
		d := fmt.Sprintf("%010d", rng.Uint64N(10_000_000_000))
		if rng.IntN(2) == 0 { // bias towards plausible area codes and exchanges
			d = fmt.Sprintf("%d%02d%d%06d", 2+rng.IntN(8), rng.IntN(100), 2+rng.IntN(8), rng.IntN(1_000_000))
		}
		raw := fmt.Sprintf(forms[rng.IntN(len(forms))], d[:3], d[3:6], d[6:])
		for _, region := range []string{"US", "CA", "GB"} {
			fast.region, slow.region = region, region
			fe, fc, fw := fast.phone(raw)
			se, sc, sw := slow.phone(raw)
			if fe != se || fc != sc || fw != sw {
				t.Fatalf("phone(%q, %s): fast %q %q %q, slow %q %q %q", raw, region, fe, fc, fw, se, sc, sw)
			}
			if _, ok := fastNSN(raw, region, fast.nanp); ok && fe != "" {
				fastHits++
			}
		}
	}
	if fastHits < n/4 {
		t.Errorf("fast path answered only %d of %d", fastHits, 3*n)
	}
}

// TestFastPathDeepAreas: in the area codes whose validity depends on six or
// seven digits, every value of those digits gives the slow path's answer.
func TestFastPathDeepAreas(t *testing.T) {
	fast := newNormaliser("US")
	slow := newNormaliser("US")
	slow.nanp = &nanpInfo{}
	info := fast.nanp
	checked := 0
	for a := 200; a < 1000; a++ {
		if info.depth[a] < 6 {
			continue
		}
		for ex := 200; ex < 1000; ex += 41 {
			for d := range 10 {
				raw := fmt.Sprintf("+1%d%d%d123", a, ex, d)
				fe, fc, fw := fast.phone(raw)
				se, sc, sw := slow.phone(raw)
				if fe != se || fc != sc || fw != sw {
					t.Fatalf("phone(%q): fast %q %q %q, slow %q %q %q", raw, fe, fc, fw, se, sc, sw)
				}
				checked++
			}
		}
	}
	// The exchange the Jamaican pattern singles out: 876-606-0xxx.
	for d := range 10 {
		raw := fmt.Sprintf("+1876606%d456", d)
		fe, fc, _ := fast.phone(raw)
		se, sc, _ := slow.phone(raw)
		if fe != se || fc != sc {
			t.Fatalf("phone(%q): fast %q %q, slow %q %q", raw, fe, fc, se, sc)
		}
	}
	if checked == 0 {
		t.Fatal("no deep area codes found")
	}
}
