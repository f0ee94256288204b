// Package cli is the command-line style both binaries share: flags
// accepted before and after positional arguments, and -h output that
// names each flag's argument for what it is (ADDR, FILE, DURATION), not
// "value".
package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// Parse parses args into fs, accepting flags anywhere: before, between and
// after positional arguments ("--" ends the flags). Afterwards fs.Args()
// holds the positional arguments in order.
func Parse(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		// flag.Parse stops at the first non-flag, or after "--".
		if len(args) >= len(rest)+1 && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

// Placeholder names the argument of a flag: its value's own Placeholder
// method, else the back-quoted word of its usage (Go's convention), else a
// name for its type; "" for a boolean.
func Placeholder(f *flag.Flag) string {
	if p, ok := f.Value.(interface{ Placeholder() string }); ok {
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			return ""
		}
		return p.Placeholder()
	}
	name, _ := flag.UnquoteUsage(f)
	switch name {
	case "":
		return ""
	case "value", "string":
		return "TEXT"
	case "int", "uint":
		return "N"
	case "float":
		return "NUMBER"
	case "duration":
		return "DURATION"
	}
	return name
}

// Generic reports whether a flag's placeholder is only its type's name
// (TEXT, N, NUMBER), not a word naming what it takes.
func Generic(f *flag.Flag) bool {
	switch Placeholder(f) {
	case "TEXT", "N", "NUMBER", "value":
		return true
	}
	return false
}

// PrintFlags writes fs's flags, one per entry, with their placeholders,
// usage and non-zero default.
func PrintFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		_, usage := flag.UnquoteUsage(f)
		line := "  -" + f.Name
		if p := Placeholder(f); p != "" {
			line += " " + p
		}
		if def := f.DefValue; def != "" && def != "0" && def != "false" && def != "0s" && def != "[]" {
			usage += fmt.Sprintf(" (default %s)", def)
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, strings.ReplaceAll(usage, "\n", "\n      "))
	})
}
