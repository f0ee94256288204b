package main

import (
	"strings"
	"testing"
)

func TestParseFlagsAndEnv(t *testing.T) {
	env := map[string]string{
		"ELASTIDIAL_CONTROLLER": "http://ctl:8080",
		"ELASTIDIAL_SECRET":     "s",
		"ELASTIDIAL_CAPACITY":   "40",
		"ELASTIDIAL_AGI_LISTEN": "127.0.0.1:0",
	}
	o, err := parse([]string{"-capacity", "60", "-simulate"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if o.controller != "http://ctl:8080" || o.capacity != 60 || o.agiAddr != "127.0.0.1:0" || !o.simulate {
		t.Errorf("flags over env: %+v", o)
	}
	env["ELASTIDIAL_CAPACITY"] = "many"
	delete(env, "ELASTIDIAL_SECRET")
	_, err = parse(nil, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "ELASTIDIAL_CAPACITY") || !strings.Contains(err.Error(), "-secret") {
		t.Errorf("bad env: got %v", err)
	}
}
