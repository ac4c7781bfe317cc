package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
)

// templateFuncs are the functions docker's --format templates have.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", err
		}
		return strings.TrimSuffix(buf.String(), "\n"), nil
	},
	"join":  strings.Join,
	"split": strings.Split,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"title": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	},
	"pad": func(s string, before, after int) string {
		return strings.Repeat(" ", before) + s + strings.Repeat(" ", after)
	},
	"truncate": func(s string, n int) string {
		if r := []rune(s); len(r) > n {
			return string(r[:n])
		}
		return s
	},
	"println": fmt.Sprintln,
}

// parseFormat parses a docker --format value: "table " before a template
// asks for a header and aligned columns; \t and \n stand for a tab and a
// newline.
func parseFormat(format string) (*template.Template, bool, error) {
	body, table := strings.CutPrefix(format, "table")
	if !table || body != "" && body[0] != ' ' {
		body, table = format, false
	}
	body = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(strings.TrimLeft(body, " "))
	tmpl, err := template.New("format").Funcs(templateFuncs).Option("missingkey=zero").Parse(body + "\n")
	if err != nil {
		return nil, false, fmt.Errorf("invalid --format %q: %w", format, err)
	}
	return tmpl, table, nil
}

// printRows prints the rows of a listing verb as docker's --format does:
// "" and "table" print the default table (a "table ..." template), "json"
// one JSON object per row with the template's field names, "table
// TEMPLATE" a header (the template run on header) over aligned rows, and
// any other Go template each row through it.
func printRows[R any](w io.Writer, format, defaultTable string, header R, rows []R) error {
	switch format {
	case "", "table":
		format = defaultTable
	case "json":
		format = "{{json .}}"
	}
	tmpl, table, err := parseFormat(format)
	if err != nil {
		return err
	}
	out := w
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		out = tw
		if err := tmpl.Execute(out, header); err != nil {
			return fmt.Errorf("--format %q: %w", format, err)
		}
	}
	for _, r := range rows {
		if err := tmpl.Execute(out, r); err != nil {
			return fmt.Errorf("--format %q: %w", format, err)
		}
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// printObjects prints inspect results as docker does: "" or "json" as one
// indented JSON array, any other format as a Go template run on each
// object's JSON (docker's field names, numbers as written).
func printObjects(w io.Writer, format string, objs []any) error {
	if format == "" || format == "json" {
		if objs == nil {
			objs = []any{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "    ")
		enc.SetEscapeHTML(false)
		return enc.Encode(objs)
	}
	tmpl, _, err := parseFormat(format)
	if err != nil {
		return err
	}
	for _, o := range objs {
		data, err := json.Marshal(o)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if err := tmpl.Execute(w, v); err != nil {
			return fmt.Errorf("--format %q: %w", format, err)
		}
	}
	return nil
}
