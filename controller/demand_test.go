package controller

import (
	"reflect"
	"testing"
	"time"

	"github.com/elastidial/elastidial/controller/planner"
)

// TestViewOfCarriesEveryField fills every field of a Demand with a value
// distinct from its zero and checks that the planner's view holds each one,
// so a field added to the campaign tier's Demand cannot be silently dropped
// on its way to the planner.
func TestViewOfCarriesEveryField(t *testing.T) {
	var d Demand
	dv := reflect.ValueOf(&d).Elem()
	for i := range dv.NumField() {
		f := dv.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(dv.Type().Field(i).Name)
		case reflect.Int:
			f.SetInt(int64(i + 1))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Float64:
			f.SetFloat(float64(i) + 0.5)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]planner.Upcoming{{At: time.Unix(int64(i), 0), Target: i}}))
		default:
			t.Fatalf("Demand.%s: kind %s not covered by this test", dv.Type().Field(i).Name, f.Kind())
		}
	}
	v := reflect.ValueOf(viewOf(d))
	for i := range dv.NumField() {
		name := dv.Type().Field(i).Name
		vname := name
		if name == "CampaignID" {
			vname = "ID"
		}
		got := v.FieldByName(vname)
		if !got.IsValid() {
			t.Errorf("CampaignView has no field for Demand.%s", name)
			continue
		}
		if !reflect.DeepEqual(got.Interface(), dv.Field(i).Interface()) {
			t.Errorf("viewOf dropped Demand.%s: got %v, want %v", name, got.Interface(), dv.Field(i).Interface())
		}
	}
	if v.NumField() != dv.NumField() {
		t.Errorf("CampaignView has %d fields, Demand %d: a field on one side has no counterpart", v.NumField(), dv.NumField())
	}
}
