package httpapi

import (
	"bytes"
	"context"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/elastidial/elastidial/flow"
)

// A campaign whose flow speaks a field the dial list lacks is refused at
// start, the state and the missing column named; once the list has the
// column, it starts.
func TestStartChecksFlowAgainstDialList(t *testing.T) {
	c, _ := newAPI(t, func(a *API) {
		a.ValidateFlow = func(_ context.Context, doc []byte) error { return flow.Check(doc, nil) }
		a.CheckColumns = func(doc []byte, cols []string) error {
			f, err := flow.Parse(doc)
			if err != nil {
				return err
			}
			return f.CheckColumns(cols)
		}
	})
	c.json("PUT", "/api/v1/trunks/carrier", map[string]any{"max_channels": 10, "max_cps": 1}, 200, nil)
	var camp struct{ ID, Status string }
	c.json("POST", "/api/v1/campaigns", map[string]any{"name": "Balances", "trunk": "carrier", "caller_id": "+14155550100", "target": 5}, 201, &camp)
	upload := func(csv string) {
		var form bytes.Buffer
		mw := multipart.NewWriter(&form)
		fw, _ := mw.CreateFormFile("file", "list.csv")
		fw.Write([]byte(csv))
		mw.Close()
		if status, body := c.do("POST", "/api/v1/campaigns/"+camp.ID+"/contacts?region=US", mw.FormDataContentType(), &form); status != 200 {
			t.Fatalf("import: %d %s", status, body)
		}
	}
	upload("phone,name\n212-555-0101,Ada\n")
	doc := map[string]any{"start": "hello", "states": map[string]any{
		"hello": map[string]any{"say": "Hello {{name}}, you owe", "next": "owe"},
		"owe":   map[string]any{"say": "{{balance}}", "as": "money", "next": "bye"},
		"bye":   map[string]any{"hangup": true}}}
	c.json("PUT", "/api/v1/campaigns/"+camp.ID+"/flow", doc, 200, nil)
	status, body := c.do("POST", "/api/v1/campaigns/"+camp.ID+"/start", "", nil)
	if want := `state \"owe\": say uses field \"balance\", which the dial list has no column for`; status != 409 || !strings.Contains(string(body), want) {
		t.Fatalf("start: %d %s\nwant 409 with %s", status, body, want)
	}
	upload("phone,name,balance\n212-555-0102,Bob,12.50\n")
	c.json("POST", "/api/v1/campaigns/"+camp.ID+"/start", nil, 200, &camp)
	if camp.Status != "running" {
		t.Fatalf("after start: %q", camp.Status)
	}
}
