package flow

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/elastidial/elastidial/flow/examples"
)

// fill sets every field reachable from v to a distinct non-zero value, so
// that a field added to State and forgotten by the compiled form fails
// the round trip below.
func fill(v reflect.Value, seed *int) {
	*seed++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *seed))
	case reflect.Int:
		v.SetInt(int64(*seed))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), seed)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), seed)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(v.Index(0), seed)
		fill(v.Index(1), seed)
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k, seed)
			fill(e, seed)
			v.SetMapIndex(k, e)
		}
	default:
		panic("fill: add " + v.Kind().String())
	}
}

func TestCompiledFormRoundTrip(t *testing.T) {
	var full Flow
	seed := 0
	fill(reflect.ValueOf(&full).Elem(), &seed)
	flows := []*Flow{&full, {States: map[string]*State{"a": {Play: []string{}, Set: map[string]string{}}}}}
	for _, doc := range [][]byte{examples.Reminder, examples.Survey} {
		f, err := Parse(doc)
		if err != nil {
			t.Fatal(err)
		}
		flows = append(flows, f)
	}
	for _, f := range flows {
		b, _ := f.MarshalBinary()
		var back Flow
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if !reflect.DeepEqual(*f, back) {
			t.Fatalf("round trip:\n%+v\n%+v", *f, back)
		}
		for i := range len(b) { // every truncation is refused
			if err := new(Flow).UnmarshalBinary(b[:i]); err == nil {
				t.Fatalf("%s: truncated to %d bytes, yet decoded", f.Name, i)
			}
		}
	}
}

func FuzzCompiledForm(f *testing.F) {
	for _, doc := range [][]byte{examples.Reminder, examples.Survey} {
		fl, _ := Parse(doc)
		b, _ := fl.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fl Flow
		if fl.UnmarshalBinary(b) != nil {
			return
		}
		again, _ := fl.MarshalBinary()
		var back Flow
		if err := back.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(fl, back) {
			t.Fatalf("decoded, but does not survive a round trip: %v", err)
		}
	})
}

func BenchmarkCompiledVsJSON(b *testing.B) {
	f, _ := Parse(examples.Reminder)
	bin, _ := f.MarshalBinary()
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			Parse(examples.Reminder)
		}
	})
	b.Run("compiled", func(b *testing.B) {
		for b.Loop() {
			new(Flow).UnmarshalBinary(bin)
		}
	})
}
