package main

import (
	"archive/zip"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/elastidial/elastidial/campaign/importer"
	"github.com/elastidial/elastidial/campaign/sqlstore"
)

func init() {
	commands["dnc"] = command{summary: "load a do-not-call file (a national registry's download) into a list",
		args: "import FILE... | -", config: []string{"config", "data", "db"}, run: dncCommand, flags: func(fs *flag.FlagSet) {
			fs.String("list", "", "a campaign `ID` for its own list; default the internal list every campaign honours")
			fs.String("source", "", "`SOURCE` of the numbers, e.g. us-ftc, uk-tps (required)")
			fs.String("version", "", "the registry download's date or `RELEASE` (required for the internal list)")
			fs.String("reason", "", "`WHY` the list is changed, kept with the import and in the audit log (required)")
			fs.String("region", "US", "`COUNTRY` of numbers written without a country code (GB for the TPS)")
			fs.String("actor", "", "`WHO` runs the import, for the record; default cli:<login name>")
		}}
}

// dncCommand streams a do-not-call file into a list, as the API's POST
// /api/v1/dnc does, and records it in the audit log.
func dncCommand(ctx context.Context, cfg Config, fs *flag.FlagSet, stdout io.Writer, _ *slog.Logger) error {
	args := fs.Args()
	if len(args) < 2 || args[0] != "import" {
		return errors.New("dnc: want 'controller dnc import -source S -version V -reason R FILE...' (FILE - for standard input; .zip and .gz files are read inside)")
	}
	get := func(name string) string { return fs.Lookup(name).Value.String() }
	d := sqlstore.DNCImport{List: get("list"), Source: get("source"), Version: get("version"), Reason: get("reason"), Actor: get("actor")}
	if d.Actor == "" {
		d.Actor = "cli"
		if u, err := user.Current(); err == nil {
			d.Actor = "cli:" + u.Username
		}
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("dnc import: %w", err)
	}
	in, closeAll, err := openDNCFiles(args[1:])
	if err != nil {
		return fmt.Errorf("dnc import: %w", err)
	}
	defer closeAll()
	store, err := sqlstore.Open(ctx, cfg.DB)
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now()
	d, rep, err := store.ImportDNCFile(ctx, d, in, importer.Options{DefaultRegion: get("region")}, now)
	q := url.Values{"source": {d.Source}, "version": {d.Version}, "list": {d.List}, "file": args[1:]}
	status := 200
	if err != nil {
		status = 500
	}
	if aerr := store.RecordAudit(context.WithoutCancel(ctx), sqlstore.AuditEntry{At: now.UTC(), Actor: d.Actor, Method: "CLI", Path: "dnc import?" + q.Encode(), Status: status, Detail: d.Reason}); aerr != nil {
		err = errors.Join(err, aerr)
	}
	if d.ID != "" {
		fmt.Fprintf(stdout, "import %s: %d numbers on the list, %d rejected, %d rows read\n", d.ID, d.Imported, d.Rejected, d.Rows)
	}
	for _, r := range rep.Samples {
		fmt.Fprintf(stdout, "  line %d: %s\n", r.Line, r.Reason)
	}
	if err != nil {
		return fmt.Errorf("dnc import: %w", err)
	}
	return nil
}

// openDNCFiles reads the files one after the other as one list, a line
// break between them: plain files, .gz files, and every file of a .zip
// (the FTC's download of several area codes); "-" is standard input.
func openDNCFiles(names []string) (io.Reader, func(), error) {
	var readers []io.Reader
	var closers []io.Closer
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	add := func(r io.Reader) { readers = append(readers, r, strings.NewReader("\n")) }
	for _, name := range names {
		if name == "-" {
			add(os.Stdin)
			continue
		}
		switch {
		case strings.HasSuffix(strings.ToLower(name), ".zip"):
			z, err := zip.OpenReader(name)
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			closers = append(closers, z)
			for _, f := range z.File {
				if f.FileInfo().IsDir() {
					continue
				}
				r, err := f.Open()
				if err != nil {
					closeAll()
					return nil, nil, fmt.Errorf("%s: %s: %w", name, f.Name, err)
				}
				closers = append(closers, r)
				add(r)
			}
		default:
			f, err := os.Open(name)
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			closers = append(closers, f)
			if !strings.HasSuffix(strings.ToLower(name), ".gz") {
				add(f)
				continue
			}
			g, err := gzip.NewReader(f)
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("%s: %w", name, err)
			}
			closers = append(closers, g)
			add(g)
		}
	}
	return io.MultiReader(readers...), closeAll, nil
}
