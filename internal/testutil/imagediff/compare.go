package imagediff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Compare lists the differences between images a and b, one per line: the
// config's fields (history entry by entry), then per layer each entry only
// in one image, each attribute of an entry that differs, and entries in
// another order. It returns nil when the images are the same.
func Compare(a, b *Image) []string {
	out := compareConfig(a.Config, b.Config)
	if len(a.Layers) != len(b.Layers) {
		out = append(out, fmt.Sprintf("layers: %d != %d", len(a.Layers), len(b.Layers)))
	}
	for i := range min(len(a.Layers), len(b.Layers)) {
		la, lb := a.Layers[i], b.Layers[i]
		if la.Digest == lb.Digest {
			continue
		}
		diffs := CompareEntries(la.Entries, lb.Entries)
		if len(diffs) == 0 {
			// Same entries, other bytes: compression or tar framing.
			diffs = []string{"same entries, other bytes (compression or tar headers)"}
		}
		for _, d := range diffs {
			out = append(out, fmt.Sprintf("layer %d (%s != %s): %s", i, la.Digest.Encoded()[:12], lb.Digest.Encoded()[:12], d))
		}
	}
	return out
}

// CompareEntries lists the differences between two layer listings: paths
// only in one, attributes that differ (path: name a != b), and a different
// order of the same entries.
func CompareEntries(a, b []Entry) []string {
	var out []string
	byPath := func(es []Entry) map[string]Entry {
		m := make(map[string]Entry, len(es))
		for _, e := range es {
			m[e.Path] = e
		}
		return m
	}
	ma, mb := byPath(a), byPath(b)
	for _, e := range a {
		o, ok := mb[e.Path]
		if !ok {
			out = append(out, "only in the first: "+e.String())
			continue
		}
		fa, fb := e.fields(), o.fields()
		for _, f := range fieldDiffs(fa, fb) {
			out = append(out, fmt.Sprintf("%s: %s", e.Path, f))
		}
	}
	for _, e := range b {
		if _, ok := ma[e.Path]; !ok {
			out = append(out, "only in the second: "+e.String())
		}
	}
	if len(out) == 0 {
		pa, pb := paths(a), paths(b)
		if !slices.Equal(pa, pb) {
			out = append(out, fmt.Sprintf("entry order: %q != %q", pa, pb))
		}
	}
	return out
}

func paths(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Path
	}
	return out
}

// fieldDiffs lists "name a != b" for each attribute whose value differs,
// an attribute missing on one side counting as empty.
func fieldDiffs(a, b [][2]string) []string {
	vb := map[string]string{}
	for _, f := range b {
		vb[f[0]] = f[1]
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range a {
		seen[f[0]] = true
		if f[1] != vb[f[0]] {
			out = append(out, fmt.Sprintf("%s %s != %s", f[0], shown(f[1]), shown(vb[f[0]])))
		}
	}
	for _, f := range b {
		if !seen[f[0]] && f[1] != "" {
			out = append(out, fmt.Sprintf("%s %s != %s", f[0], shown(""), f[1]))
		}
	}
	return out
}

// shown renders an attribute's value, "-" for none.
func shown(v string) string {
	if v == "" {
		return "-"
	}
	return v
}

// compareConfig lists the top-level config fields that differ, and the
// history entry by entry.
func compareConfig(a, b []byte) []string {
	if bytes.Equal(a, b) {
		return nil
	}
	var ma, mb map[string]json.RawMessage
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return []string{"config: not JSON objects"}
	}
	keys := map[string]bool{}
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	var out []string
	for _, k := range sorted {
		if bytes.Equal(compact(ma[k]), compact(mb[k])) {
			continue
		}
		if k == "history" {
			var ha, hb []json.RawMessage
			if json.Unmarshal(ma[k], &ha) == nil && json.Unmarshal(mb[k], &hb) == nil && len(ha) == len(hb) {
				for i := range ha {
					if !bytes.Equal(compact(ha[i]), compact(hb[i])) {
						out = append(out, fmt.Sprintf("config: history[%d]: %s != %s", i, compact(ha[i]), compact(hb[i])))
					}
				}
				continue
			}
		}
		out = append(out, fmt.Sprintf("config: %s: %s != %s", k, compact(ma[k]), compact(mb[k])))
	}
	if len(out) == 0 {
		out = append(out, "config: same fields, other bytes")
	}
	return out
}

func compact(m json.RawMessage) []byte {
	if m == nil {
		return []byte("(none)")
	}
	var buf bytes.Buffer
	if json.Compact(&buf, m) != nil {
		return m
	}
	return buf.Bytes()
}
