// Package compression owns the recognition of compressed streams: it tells
// gzip, zstd, bzip2 and xz apart by their magic bytes (Detect) and opens a
// decompressing reader for whichever it finds (NewReader), as Docker does
// for layers, image archives and ADD sources.
//
// Writing compressed streams is left to the packages that produce them,
// since each needs its own settings (levels, concurrency, reproducibility).
package compression
