package importer

import (
	"regexp/syntax"
	"slices"
	"strconv"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// The fast path for North American (NANP, +1) numbers.
//
// phonenumbers.Parse plus IsValidNumber cost ~20µs a number, almost all of it
// in regular expressions over the national number; at that rate a 1,000,000
// row list takes 20 s of CPU. For +1 numbers written plainly (digits and
// " ()-." punctuation, optionally "+1" or a leading "1"), parsing is trivial:
// the national significant number (NSN) is the ten digits. Validity is a
// function of the NSN that libphonenumber computes with anchored regular
// expressions from the metadata of every +1 region. We prove, once, from the
// metadata itself, that none of those expressions looks past the first
// first few digits for a given area code — then validity of a ten-digit NSN
// depends only on those digits, and one real IsValidNumber
// per distinct prefix answers for every number sharing it. If the proof fails
// (metadata changed shape), the fast path switches itself off and every
// number takes the slow path. Invalid outcomes always go to the slow path, so
// reasons are the slow path's words. TestFastPathMatchesSlowPath checks the
// two agree.

// nanp is the analysis result, computed once per process on first use.
var nanp = sync.OnceValue(analyseNANP)

type nanpInfo struct {
	// depth[a] is how many leading NSN digits decide validity for numbers
	// in area code a (the first three digits); 0 turns the fast path off.
	depth   [1000]uint8
	on      bool
	regions map[string]bool // default regions whose plain numbers parse as +1 NSN
}

// nsnLen is the length of every +1 national significant number.
const nsnLen = 10

func analyseNANP() *nanpInfo {
	info := &nanpInfo{regions: map[string]bool{}}
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return info
	}
	var pats []*digitPattern
	for _, md := range coll.GetMetadata() {
		if md.GetCountryCode() != 1 {
			continue
		}
		if ld := md.GetLeadingDigits(); ld != "" {
			p, ok := compileDigitPattern(ld, true)
			if !ok {
				return info
			}
			pats = append(pats, p)
		}
		for _, d := range []*phonenumbers.PhoneNumberDesc{
			md.GetGeneralDesc(), md.GetPremiumRate(), md.GetTollFree(), md.GetSharedCost(),
			md.GetVoip(), md.GetPersonalNumber(), md.GetPager(), md.GetUan(),
			md.GetVoicemail(), md.GetFixedLine(), md.GetMobile(),
		} {
			if d.GetNationalNumberPattern() == "" {
				continue
			}
			p, ok := compileDigitPattern(d.GetNationalNumberPattern(), false)
			if !ok {
				return info
			}
			pats = append(pats, p)
		}
		// A plain number in this default region is read as the NSN itself,
		// or "1" + NSN, only when the region strips nothing but "1" and
		// uses no transform rule (some Caribbean regions prepend their area
		// code to seven-digit numbers; those take the slow path).
		npp := md.GetNationalPrefixForParsing()
		if (npp == "" || npp == "1") && md.GetNationalPrefixTransformRule() == "" && md.GetInternationalPrefix() == "011" {
			info.regions[md.GetId()] = true
		}
	}
	for a := 200; a < 1000; a++ {
		area := strconv.Itoa(a)
		d := 3
		for _, p := range pats {
			dd, ok := p.depthAfter(area)
			if !ok {
				return &nanpInfo{}
			}
			d = max(d, dd)
		}
		info.depth[a] = uint8(d)
	}
	info.on = true
	return info
}

// digitPattern is a libphonenumber pattern compiled for the question "which
// leading digits of a ten-digit NSN does its match depend on?". It runs the
// pattern's NFA (regexp/syntax.Prog) by hand over digits.
type digitPattern struct {
	prog   *syntax.Prog
	prefix bool // matched as a prefix (leading digits), else anchored both ends
	memo   map[string]int
}

func compileDigitPattern(pattern string, prefix bool) (*digitPattern, bool) {
	// Anchored the way phonenumbers anchors it.
	anchored := "^(?:" + pattern + ")$"
	if prefix {
		anchored = "^(?:" + pattern + ")"
	}
	re, err := syntax.Parse(anchored, syntax.Perl)
	if err != nil {
		return nil, false
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, false
	}
	return &digitPattern{prog: prog, prefix: prefix, memo: map[string]int{}}, true
}

// stateSet is a sorted set of program counters, with whether Match is in it.
type stateSet struct {
	pcs   []uint32
	match bool
}

func (s stateSet) key(pos int) string {
	b := make([]byte, 0, 4*len(s.pcs)+2)
	b = append(b, byte(pos))
	for _, pc := range s.pcs {
		b = append(b, byte(pc>>24), byte(pc>>16), byte(pc>>8), byte(pc))
	}
	return string(b)
}

// closure adds pc and everything reachable from it without input at pos.
// ok is false for an instruction this analysis does not model.
func (p *digitPattern) closure(set *stateSet, seen map[uint32]bool, pc uint32, pos int) bool {
	if seen[pc] {
		return true
	}
	seen[pc] = true
	in := &p.prog.Inst[pc]
	switch in.Op {
	case syntax.InstAlt, syntax.InstAltMatch:
		return p.closure(set, seen, in.Out, pos) && p.closure(set, seen, in.Arg, pos)
	case syntax.InstCapture, syntax.InstNop:
		return p.closure(set, seen, in.Out, pos)
	case syntax.InstEmptyWidth:
		switch syntax.EmptyOp(in.Arg) {
		case syntax.EmptyBeginText:
			if pos == 0 {
				return p.closure(set, seen, in.Out, pos)
			}
			return true
		case syntax.EmptyEndText:
			if pos == nsnLen {
				return p.closure(set, seen, in.Out, pos)
			}
			return true
		}
		return false
	case syntax.InstMatch:
		set.match = true
		return true
	case syntax.InstFail:
		return true
	case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
		set.pcs = append(set.pcs, pc)
		return true
	}
	return false
}

func (p *digitPattern) step(s stateSet, digit rune, pos int) (stateSet, bool) {
	var out stateSet
	seen := map[uint32]bool{}
	for _, pc := range s.pcs {
		in := &p.prog.Inst[pc]
		var hit bool
		switch in.Op {
		case syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
			hit = true
		default:
			hit = in.MatchRune(digit)
		}
		if hit && !p.closure(&out, seen, in.Out, pos+1) {
			return out, false
		}
	}
	slices.Sort(out.pcs)
	return out, true
}

// depthAfter answers how many leading digits decide whether a ten-digit
// string starting with area matches: the largest 1-based position whose
// digit can change the outcome (at least len(area) is implied by the caller).
func (p *digitPattern) depthAfter(area string) (int, bool) {
	var s stateSet
	if !p.closure(&s, map[uint32]bool{}, uint32(p.prog.Start), 0) {
		return 0, false
	}
	slices.Sort(s.pcs)
	for i, c := range area {
		if p.prefix && s.match {
			return 0, true // matched already: decided by the area alone
		}
		var ok bool
		if s, ok = p.step(s, c, i); !ok {
			return 0, false
		}
	}
	return p.dep(s, len(area))
}

// dep is the largest 1-based position ≥ pos+1 whose digit can change the
// outcome from state s at pos, 0 if none. When every digit leads to the same
// next state the position cannot matter; that test is sufficient, not
// necessary, so the answer may be larger than the truth, never smaller.
func (p *digitPattern) dep(s stateSet, pos int) (int, bool) {
	if (p.prefix && s.match) || len(s.pcs) == 0 || pos == nsnLen {
		return 0, true
	}
	k := s.key(pos)
	if d, ok := p.memo[k]; ok {
		return d, true
	}
	var next [10]stateSet
	same := true
	for d := range 10 {
		var ok bool
		if next[d], ok = p.step(s, rune('0'+d), pos); !ok {
			return 0, false
		}
		if d > 0 && (next[d].match != next[0].match || !slices.Equal(next[d].pcs, next[0].pcs)) {
			same = false
		}
	}
	out := 0
	if same {
		var ok bool
		if out, ok = p.dep(next[0], pos+1); !ok {
			return 0, false
		}
	} else {
		out = pos + 1
		for d := range 10 {
			dd, ok := p.dep(next[d], pos+1)
			if !ok {
				return 0, false
			}
			out = max(out, dd)
		}
	}
	p.memo[k] = out
	return out, true
}

// fastNSN recognises a plainly written +1 number and answers its ten-digit
// NSN, or ok false when the slow path must decide.
func fastNSN(raw, region string, info *nanpInfo) (nsn string, ok bool) {
	if !info.on {
		return "", false
	}
	var buf [16]byte
	n := 0
	plus := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c >= '0' && c <= '9':
			if n == len(buf) {
				return "", false
			}
			buf[n] = c
			n++
		case c == '+':
			if n > 0 || plus {
				return "", false
			}
			plus = true
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", false
		}
	}
	d := buf[:n]
	switch {
	case plus && n == 11 && d[0] == '1':
		d = d[1:]
	case !plus && info.regions[region] && n == 11 && d[0] == '1':
		d = d[1:]
	case !plus && info.regions[region] && n == 10:
	default:
		return "", false
	}
	if d[0] < '2' {
		return "", false
	}
	return string(d), true
}

// nanpValid answers whether the ten-digit NSN is a valid +1 number, asking
// libphonenumber once per distinct prefix of info.depth digits.
func (n *normaliser) nanpValid(nsn string, info *nanpInfo) bool {
	area := int(nsn[0]-'0')*100 + int(nsn[1]-'0')*10 + int(nsn[2]-'0')
	depth := int(info.depth[area])
	// The depth is part of the key: prefixes of different lengths never
	// collide (a shorter one is < 10^depth ≤ 10^10 < 1<<40).
	p, _ := strconv.ParseUint(nsn[:depth], 10, 64)
	key := uint64(depth)<<40 | p
	if v, ok := n.nanpCache.Load(key); ok {
		return v.(bool)
	}
	nn, _ := strconv.ParseUint(nsn, 10, 64)
	num := &phonenumbers.PhoneNumber{}
	num.CountryCode = new(int32(1))
	num.NationalNumber = new(nn)
	valid := phonenumbers.IsValidNumber(num)
	n.nanpCache.Store(key, valid)
	return valid
}
