package builder

import (
	"fmt"
	"maps"
	"strconv"
	"time"
)

// SourceDateEpochArg is the build arg that carries SOURCE_DATE_EPOCH into a
// Dockerfile, as BuildKit passes it: predefined (no warning when a
// Dockerfile does not declare it), and visible to RUN after
// `ARG SOURCE_DATE_EPOCH`.
const SourceDateEpochArg = "SOURCE_DATE_EPOCH"

// ParseSourceDateEpoch parses a SOURCE_DATE_EPOCH value: the seconds since
// 1970-01-01 00:00:00 UTC as a decimal integer, as `date +%s` prints them
// (https://reproducible-builds.org/specs/source-date-epoch/).
func ParseSourceDateEpoch(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 253402300799 { // 9999-12-31T23:59:59Z
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: want the seconds since 1970-01-01 UTC, as date +%%s prints them", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// withSourceDateEpoch returns opts with SourceDateEpoch and the
// SOURCE_DATE_EPOCH build arg agreeing: SourceDateEpoch wins, else a
// non-empty build arg sets it (BuildKit's way). The caller's BuildArgs map
// is never changed.
func withSourceDateEpoch(opts BuildOptions) (BuildOptions, error) {
	if opts.SourceDateEpoch == nil {
		v := opts.BuildArgs[SourceDateEpochArg]
		if v == "" {
			return opts, nil
		}
		t, err := ParseSourceDateEpoch(v)
		if err != nil {
			return opts, fmt.Errorf("--build-arg %s", err)
		}
		opts.SourceDateEpoch = &t
		return opts, nil
	}
	t := time.Unix(opts.SourceDateEpoch.Unix(), 0).UTC()
	opts.SourceDateEpoch = &t
	opts.BuildArgs = maps.Clone(opts.BuildArgs)
	if opts.BuildArgs == nil {
		opts.BuildArgs = map[string]string{}
	}
	opts.BuildArgs[SourceDateEpochArg] = strconv.FormatInt(t.Unix(), 10)
	return opts, nil
}

// epochKey is the build's SOURCE_DATE_EPOCH for cache keys, "" without one.
func (bd *build) epochKey() string {
	if bd.opts.SourceDateEpoch == nil {
		return ""
	}
	return strconv.FormatInt(bd.opts.SourceDateEpoch.Unix(), 10)
}

// now is the time a step of the build records in its history entry: the
// build's SOURCE_DATE_EPOCH when it has one, else the current time.
func (bd *build) now() time.Time {
	if bd.opts.SourceDateEpoch != nil {
		return *bd.opts.SourceDateEpoch
	}
	return time.Now().UTC()
}
